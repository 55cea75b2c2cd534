"""The 28 GoEmotions emotions and the label schemes that pool them into a task's label set."""

from typing import Literal

Scheme = Literal["clusters", "full", "ekman"]

#: The 28 GoEmotions classes; a label id is an index into this tuple (emotions.txt order).
EMOTIONS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip
NEUTRAL_ID = 27

#: The 7 pooled clusters of Ma, Chochlakis et al. (EMNLP 2025), in their order.
CLUSTERS: dict[str, tuple[str, ...]] = {
    "joy": ("amusement", "excitement", "joy", "love"),
    "optimism": ("desire", "optimism", "caring"),
    "admiration": ("pride", "admiration", "gratitude", "relief", "approval", "realization"),
    "surprise": ("surprise", "confusion", "curiosity"),
    "fear": ("fear", "nervousness"),
    "sadness": ("remorse", "embarrassment", "disappointment", "sadness", "grief"),
    "anger": ("anger", "disgust", "annoyance", "disapproval"),
}

#: The Ekman groups of the release's ekman_mapping.json (keys sorted, members as in the file).
EKMAN: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism",
        "relief", "pride", "admiration", "desire", "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}  # fmt: skip


def label_names(scheme: Scheme) -> list[str]:
    """The task's label set for `scheme`, in the order used by `labels` and `annotator_probs`."""
    return list(_groups(scheme))


def membership(scheme: str) -> list[tuple[int, ...]]:
    """For each emotion id, the indices of the scheme's labels it turns on (none for neutral)."""
    index = {name: i for i, name in enumerate(EMOTIONS)}
    members: list[tuple[int, ...]] = [() for _ in EMOTIONS]
    for label, emotions in enumerate(_groups(scheme).values()):
        for emotion in emotions:
            members[index[emotion]] += (label,)
    return members


def _groups(scheme: str) -> dict[str, tuple[str, ...]]:
    if scheme == "clusters":
        return CLUSTERS
    if scheme == "ekman":
        return EKMAN
    if scheme == "full":
        return {name: (name,) for name in EMOTIONS if name != EMOTIONS[NEUTRAL_ID]}
    raise ValueError(
        f"unknown GoEmotions scheme {scheme!r}; expected 'clusters', 'full' or 'ekman'"
    )
