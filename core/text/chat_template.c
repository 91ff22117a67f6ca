/* chat_template.c: see chat_template.h. */
#include "text/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

const char emu2_chat_system_default[] =
    "You are a helpful assistant, dedicated to delivering comprehensive and meticulous responses.";

emu2_status emu2_chat_apply_template(const char *model_version, const char *prompt, char **out, emu2_error *err)
{
    int chat = model_version && strcmp(model_version, "chat") == 0;
    const char *pre = chat ? emu2_chat_system_default : "";
    const char *mid = chat ? " [USER]: " : "";
    const char *post = chat ? " [ASSISTANT]:" : "";
    size_t n = strlen(pre) + strlen(mid) + strlen(prompt) + strlen(post) + 1;
    char *s = malloc(n);
    if (!s)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    snprintf(s, n, "%s%s%s%s", pre, mid, prompt, post);
    *out = s;
    return EMU2_OK;
}
