"""emu2ref: an Emu2-architecture reference assembled from independent implementations.

Decoder = transformers 4.31 LlamaForCausalLM, vision = timm 0.9.12 Eva (post-norm EVA-CLIP-E shape),
plus the Emu2 glue (pool, project_up/project_down, splice, generation wrapper) written here from
EMU2-SPEC.md. Dev-time only; the engine never imports this.
"""
from .config import make_config, load_config, save_config, llama_config_from, grid_size, pool_kernel
from .model import Emu2Model, build_model, randomize_
from .io import save_pretrained, load_pretrained, hf_state_dict, native_state_dict
from .preprocess import load_rgb, preprocess, resized_uint8, CLIP_MEAN, CLIP_STD
from .tokenizer import (load_tokenizer, emu2_added_tokens, write_tokenizer_files, expand_placeholders,
                        IMG_PLH, IMG_PLH_SHORT)
from .generate import (build_input_ids, embed_inputs, generate, first_step_logits, vision_block_outputs,
                       chat_prompt_native, chat_prompt_hf, SYSTEM_DEFAULT, SYSTEM_GROUNDING)
