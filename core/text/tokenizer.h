/* tokenizer.h: Emu2's tokenizer: SentencePiece + added tokens, with the exact semantics of
 * transformers 4.31's slow LlamaTokenizer (legacy) as Emu2 uses it (EMU2-SPEC §4.2, §8.13).
 *
 * Loading a model folder:
 *   - tokenizer.model (required);
 *   - tokenizer_config.json / special_tokens_map.json (optional): bos/eos/unk/pad tokens, whether
 *     each is an AddedToken (whitespace kept) or a plain string (whitespace stripped on both sides),
 *     additional_special_tokens, add_bos_token / add_eos_token; special_tokens_map.json wins, as
 *     in from_pretrained;
 *   - added_tokens.json (optional, token -> id): when present the folder is loaded as
 *     LlamaTokenizer.from_pretrained(dir) does; when absent the folder is treated as the plain
 *     LLaMA tokenizer and Emu2's own tokens are added as the native code does
 *     (add_special_tokens with pad/bos/eos and the §4.2 list, + [USER]/[ASSISTANT] for "chat").
 * Encoding: the text is split on added/special tokens (longest match first), whitespace next to
 * each token is stripped as the token's lstrip/rstrip rules say, each remaining chunk is encoded by
 * SentencePiece on its own, BOS is prepended. Prompts must be valid UTF-8 (what a Python str holds).
 * Limits of the equivalence: the token split is "leftmost, then longest", which equals
 * transformers' Trie.split unless one added token occurs inside another (not as a prefix): such
 * token sets are refused (EMU2_ERR_UNSUPPORTED); placeholders are expanded at the id level, which
 * equals string substitution unless an added token could match across a placeholder's edge (not
 * the case for Emu2's tokens).
 * A loaded tokenizer is read-only and may be shared by threads. */
#ifndef EMU2_TEXT_TOKENIZER_H
#define EMU2_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

/* Limits that keep untrusted prompts bounded. */
#define EMU2_TOKENIZER_MAX_TEXT_BYTES ((size_t)1 << 20) /* prompt bytes (worst case ~2 s to encode) */
#define EMU2_TOKENIZER_MAX_IDS ((size_t)1 << 21)        /* ids of one encoded prompt */
#define EMU2_TOKENIZER_MAX_N_QUERY 4096                 /* <image> slots per placeholder */

typedef struct emu2_tokenizer emu2_tokenizer;

/* model_version: "base" or "chat" (NULL = "base"); only used when dir has no added_tokens.json. */
emu2_status emu2_tokenizer_load(const char *dir, const char *model_version, emu2_tokenizer **out,
                                emu2_error *err);
void emu2_tokenizer_free(emu2_tokenizer *tok);

/* flags: EMU2_TOK_* of emu2.h; EMU2_TOK_NO_BOS is add_special_tokens=False (no BOS, and no EOS
 * either when the config sets add_eos_token). n_query: <image> count per placeholder (0..MAX).
 * Errors: EMU2_ERR_FORMAT for invalid UTF-8, EMU2_ERR_LIMIT past the limits above.
 * *ids: release with emu2_free (never NULL on success, even for zero ids). */
emu2_status emu2_tokenizer_encode(const emu2_tokenizer *tok, const char *text, unsigned flags,
                                  int n_query, int32_t **ids, size_t *n_ids, emu2_error *err);
/* As the slow tokenizer's decode(ids, skip_special_tokens=skip_special). *text: emu2_free. */
emu2_status emu2_tokenizer_decode(const emu2_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                  int skip_special, char **text, emu2_error *err);

int32_t emu2_tokenizer_token_id(const emu2_tokenizer *tok, const char *token); /* -1 if absent */
int32_t emu2_tokenizer_vocab_size(const emu2_tokenizer *tok); /* sentencepiece pieces + added */
const char *emu2_tokenizer_piece(const emu2_tokenizer *tok, int32_t id); /* NULL if out of range */
/* BOS / EOS / PAD ids (-1 when the tokenizer has none). */
int32_t emu2_tokenizer_bos_id(const emu2_tokenizer *tok);
int32_t emu2_tokenizer_eos_id(const emu2_tokenizer *tok);
int32_t emu2_tokenizer_pad_id(const emu2_tokenizer *tok);
/* Number of added tokens (ids vocab_size - n .. vocab_size - 1). */
size_t emu2_tokenizer_added_count(const emu2_tokenizer *tok);

#endif
