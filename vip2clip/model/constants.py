"""Numbers the method and its backbone fix, each with its source."""

from __future__ import annotations

# ViP²-CLIP test.py / train.py: fixed softmax temperature of every 2-way similarity.
TEMPERATURE = 0.07

# Paper setting (train.sh/test.sh): ViT-L/14@336 run at 518 px, taps after blocks 6/12/18/24.
DEFAULT_IMAGE_SIZE = 518
DEFAULT_TAPS = (6, 12, 18, 24)
DEFAULT_TOP_K = 50
DEFAULT_SIGMA = 8.0
# scipy.ndimage.gaussian_filter default: kernel radius = round(truncate * sigma).
GAUSSIAN_TRUNCATE = 4.0

# ICA defaults of the official checkpoints (train.sh): 7 context and 3 class tokens.
DEFAULT_N_CTX = 7
DEFAULT_N_CLS = 3
# FGP: 8 attention heads over the embedding dimension (prompt_learner.FGP).
FGP_HEADS = 8

# Training recipe (train.py / train.sh).
FOCAL_GAMMA = 2.0
FOCAL_SMOOTH = 1e-5
MASK_THRESHOLD = 0.5
LR_PROMPT_LEARNER = 1e-3
LR_FGP = 1e-5
BATCH_SIZE = 8
EPOCHS = 10
SEED = 111
