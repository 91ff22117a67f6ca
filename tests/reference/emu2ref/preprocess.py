"""§2 image preprocessing: RGB, PIL bicubic resize to (s,s), /255, CLIP mean/std, float32 [3,s,s]."""
import io

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_rgb(src):
    """Path, bytes or PIL image -> PIL RGB image (PIL open + .convert('RGB'))."""
    if isinstance(src, Image.Image):
        return src.convert("RGB")
    if isinstance(src, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(src))).convert("RGB")
    return Image.open(src).convert("RGB")


def resized_uint8(img, image_size):
    """PIL (antialiased) bicubic resize to exactly (s, s), no crop -> uint8 array [s, s, 3]."""
    img = load_rgb(img)
    return np.asarray(img.resize((image_size, image_size), Image.BICUBIC), dtype=np.uint8).copy()


def preprocess(img, image_size):
    """-> float32 tensor [3, s, s], same ops as torchvision ToTensor + Normalize on a PIL image."""
    arr = resized_uint8(img, image_size)
    t = torch.from_numpy(arr).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.as_tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    return t.sub_(mean).div_(std)
