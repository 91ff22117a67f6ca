"""Train the tiny model's SentencePiece BPE (LLaMA-like settings) and write the Emu2 tokenizer files.

python tests/reference/make_tokenizer.py [out_dir]   (default models/emu2-tiny-digits)
"""
import os
import random
import sys
import tempfile

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu2ref import data as D  # noqa: E402
from emu2ref.tokenizer import write_tokenizer_files, load_tokenizer  # noqa: E402

VOCAB = 384


def corpus_lines(seed=7, n=20000):
    rng = random.Random(seed)
    lines = [D.DESCRIBE_PROMPT, "Describe the image in details.", "What is in the image?"]
    for _ in range(n):
        lab = D.random_label(rng)
        lines.append(D.caption(lab) + ".")
        lines.append(D.sentence(lab))
        lines.append(D.DESCRIBE_PROMPT + " " + D.sentence(lab))
    return lines


def main(out_dir):
    tmp = tempfile.mkdtemp(prefix="emu2tok-")
    txt = os.path.join(tmp, "corpus.txt")
    with open(txt, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus_lines()) + "\n")
    prefix = os.path.join(tmp, "sp")
    spm.SentencePieceTrainer.train(
        input=txt, model_prefix=prefix, model_type="bpe", vocab_size=VOCAB, byte_fallback=True,
        split_digits=True, add_dummy_prefix=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        allow_whitespace_only_pieces=True, num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
        minloglevel=2,
    )
    n = write_tokenizer_files(prefix + ".model", out_dir, "base")
    tok = load_tokenizer(out_dir)
    print("vocab", n, "pad", tok.convert_tokens_to_ids("[PAD]"))
    print(tok.tokenize("[IMG]<image>[/IMG][blue, black, 1, top left]"))
    print(tok.tokenize("[IMG]<image>[/IMG]Describe the image in details: A red circle with a white 3 in the bottom left corner."))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../models/emu2-tiny-digits"))
