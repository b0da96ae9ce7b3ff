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


# Subject ids in the composite protocol: each dataset's own ids shifted into a block of its own,
# so that subject 1 of SMIC and subject 1 of CASME II stay two people (SMIC s3 → 1003, CASME II sub03 → 2003).
COMPOSITE_SUBJECT_BASE = {"smic": 1000, "casme2": 2000, "samm": 3000}


def protocol_entry(protocol: str, dataset: str, label: str, subject: int,
                   composite: str | None = None) -> tuple[str, int] | None:
    """The one rule for what a clip is under an evaluation protocol: ``(class name, subject id)``, or ``None`` when
    the protocol does not use the clip.

    Labels are compared as stored (the loaders and caches hold them normalised by :func:`normalise`).

    - a single-dataset protocol (``smic``, ``casme2``, ``samm``) takes its own dataset's clips whose label is one of
      its classes, subject ids as the dataset gives them;
    - ``composite`` takes SMIC-HS, CASME II and SAMM clips by their composite label (``composite``, else derived from
      ``label`` with :func:`composite_label`), subject ids shifted by :data:`COMPOSITE_SUBJECT_BASE`;
    - ``all`` (pre-training) takes every clip with its own label.

    The data bank (training), export's check clips and the dataset registry all ask here.
    """
    if protocol == "all":
        return label, int(subject)
    if protocol == "composite":
        if dataset not in COMPOSITE_SUBJECT_BASE:
            return None
        name = composite if composite is not None else composite_label(dataset, label)
        if name not in PROTOCOLS["composite"]:
            return None
        return name, COMPOSITE_SUBJECT_BASE[dataset] + int(subject)
    if protocol not in PROTOCOLS:
        return None
    if dataset != protocol or label not in PROTOCOLS[protocol]:
        return None
    return label, int(subject)
