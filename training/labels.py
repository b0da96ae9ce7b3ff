"""Label protocols: which classes each evaluation uses, and the MEGC2019 composite mapping.

Emotion names are the datasets' own, lower-cased and with spellings normalised by :func:`normalise`.
"""

from __future__ import annotations

# Class order is the order of the model's outputs.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "smic": ("negative", "positive", "surprise"),
    "casme2": ("others", "happiness", "surprise", "disgust", "repression"),
    "samm": ("other", "happiness", "surprise", "anger", "contempt"),
    "composite": ("negative", "positive", "surprise"),
}

# MEGC2019 composite (See et al. 2019): every dataset's emotions onto negative / positive / surprise.
# Emotions missing from a dataset's map have no composite label (CASME II "others", "fear", "sadness";
# SAMM "other") and are left out of the composite protocol.
COMPOSITE: dict[str, dict[str, str]] = {
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
    "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
    "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
             "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
}

_SPELLINGS = {
    "happy": "happiness", "happyness": "happiness", "sad": "sadness", "surprised": "surprise",
    "disgusted": "disgust", "angry": "anger", "fearful": "fear", "repressed": "repression",
    "pos": "positive", "po": "positive", "neg": "negative", "ne": "negative", "sur": "surprise", "su": "surprise",
}


def normalise(label) -> str:
    """``" Happiness "`` → ``"happiness"``, ``"Other"`` → ``"other"``, ``"happy"`` → ``"happiness"``."""
    text = " ".join(str(label).strip().lower().replace("_", " ").split())
    return _SPELLINGS.get(text, text)


def composite_label(dataset: str, emotion: str) -> str | None:
    return COMPOSITE.get(dataset, {}).get(normalise(emotion))
