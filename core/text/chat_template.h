/* chat_template.h: the text the tokenizer sees for a user prompt (EMU2-SPEC.md §5). Base models use the
 * prompt as it is; Emu2-Chat uses the native (demo) template "SYSTEM [USER]: prompt [ASSISTANT]:". */
#ifndef EMU2_TEXT_CHAT_TEMPLATE_H
#define EMU2_TEXT_CHAT_TEMPLATE_H

#include "emu2.h"

/* Emu2-Chat's default system message. */
extern const char emu2_chat_system_default[];

/* *out (malloc'd) = the templated prompt for model_version "base" or "chat". */
emu2_status emu2_chat_apply_template(const char *model_version, const char *prompt, char **out, emu2_error *err);

#endif
