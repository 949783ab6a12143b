"""The perception models' vocabularies and the everyday nouns that name them: one source for training facts
(nouns in a dialogue mapped to what the detector and classifier can say) and for the object-hallucination
metric (concrete nouns a dialogue mentions that neither the caption nor the detected facts support).

- COCO: the 90-id label map of SSD MobileNet v2 COCO (TF model zoo, 2018-03-29; the ids its
  `frozen_inference_graph.pb` emits, ten ids unused, 80 names). Names as torchvision's `_COCO_CATEGORIES`
  (BSD-3-Clause), which follows the same id layout.
- ImageNet: the 1000 class names in class-index order, the order EfficientNet-Lite0's logits come in, copied from
  torchvision 0.29.2 `torchvision/models/_meta.py` `_IMAGENET_CATEGORIES` (BSD-3-Clause) into
  `imagenet_classes.txt` (sha256 pinned in the tests); torchvision made the names unique ("crane bird" vs
  "crane").

A *term* is a lower-case vocabulary name. Text matching normalises both sides the same way (lower case, hyphens
and apostrophes dropped to spaces/nothing), takes the longest phrase first, knows plurals and the synonyms below,
and leaves out words whose everyday sense is not the object ("fly", "iron", "boxer", "orange" the colour …).
ImageNet classes that name a kind of a COCO category ("German shepherd" is a dog) carry that category as parent:
a fact "German shepherd" supports a mention of "dog", but a fact "dog" does not support "German shepherd".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

# id -> name, exactly the ids the TF model-zoo graph emits (12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are unused).
COCO_LABEL_MAP: Mapping[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 8: "truck",
    9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench",
    16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear",
    24: "zebra", 25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase",
    34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
    40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple", 54: "sandwich",
    55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake",
    62: "chair", 63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv",
    73: "laptop", 74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven",
    80: "toaster", 81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors",
    88: "teddy bear", 89: "hair drier", 90: "toothbrush",
}
COCO_NAMES: tuple[str, ...] = tuple(COCO_LABEL_MAP.values())


def _load_imagenet() -> tuple[str, ...]:
    text = resources.files("vispod.common").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


IMAGENET_CLASSES: tuple[str, ...] = _load_imagenet()

# ImageNet names that would be read as something else in prose get a term that says what the class is.
_IMAGENET_RENAMED: Mapping[str, str] = {
    "kite": "kite bird", "plane": "carpenter's plane", "pirate": "pirate ship", "ear": "ear of corn",
    "hip": "rose hip", "cock": "rooster", "drake": "drake duck", "sorrel": "sorrel horse", "ram": "ram sheep",
    "boxer": "boxer dog", "racer": "race car", "jean": "jeans", "pick": "guitar pick", "rule": "ruler",
    "ice bear": "polar bear", "tabby": "tabby cat", "teddy": "teddy bear", "hotdog": "hot dog",
    "notebook": "notebook computer", "monitor": "computer monitor", "screen": "computer screen",
}

# ImageNet class-index ranges and classes that are kinds of a COCO category.
_COCO_PARENT_RANGES: tuple[tuple[range, str], ...] = (
    (range(151, 269), "dog"), (range(281, 286), "cat"), (range(7, 25), "bird"), (range(80, 101), "bird"),
    (range(127, 147), "bird"), (range(294, 298), "bear"),
)
_COCO_PARENT_NAMES: Mapping[str, tuple[str, ...]] = {
    "elephant": ("tusker", "Indian elephant", "African elephant"),
    "horse": ("sorrel",), "cow": ("ox",), "sheep": ("ram",),
    "car": ("beach wagon", "cab", "convertible", "jeep", "limousine", "minivan", "Model T", "racer", "sports car"),
    "truck": ("fire engine", "garbage truck", "moving van", "pickup", "police van", "tow truck", "trailer truck"),
    "bus": ("minibus", "school bus", "trolleybus"),
    "train": ("bullet train", "electric locomotive", "steam locomotive", "freight car", "passenger car",
              "streetcar"),
    "boat": ("aircraft carrier", "canoe", "catamaran", "container ship", "fireboat", "gondola", "lifeboat", "liner",
             "pirate", "schooner", "speedboat", "submarine", "trimaran", "yawl"),
    "airplane": ("airliner", "warplane"), "bicycle": ("bicycle-built-for-two", "mountain bike"),
    "motorcycle": ("moped", "motor scooter"), "bench": ("park bench",),
    "chair": ("barber chair", "folding chair", "rocking chair", "throne"), "couch": ("studio couch",),
    "bed": ("four-poster",), "tv": ("television", "monitor", "screen"), "laptop": ("notebook",),
    "remote": ("remote control",), "keyboard": ("computer keyboard",), "cell phone": ("cellular telephone",),
    "sink": ("washbasin",), "toilet": ("toilet seat",), "book": ("book jacket", "comic book"),
    "clock": ("analog clock", "digital clock", "wall clock"),
    "handbag": ("purse",), "tie": ("Windsor tie", "bow tie", "bolo tie"),
    "bottle": ("beer bottle", "pill bottle", "pop bottle", "water bottle", "wine bottle"),
    "cup": ("coffee mug",), "bowl": ("mixing bowl", "soup bowl"), "spoon": ("wooden spoon",),
    "apple": ("Granny Smith",), "skis": ("ski",), "tennis racket": ("racket",),
    "sports ball": ("baseball", "basketball", "croquet ball", "golf ball", "ping-pong ball", "rugby ball",
                    "soccer ball", "tennis ball", "volleyball"),
    "person": ("ballplayer", "groom", "scuba diver"),
}

# Everyday nouns (singular; plurals are derived) -> the term they name.
SYNONYMS: Mapping[str, str] = {
    **dict.fromkeys((
        "people", "man", "woman", "boy", "girl", "kid", "child", "baby", "toddler", "guy", "lady", "gentleman",
        "adult", "teenager", "teen", "friend", "mom", "dad", "mother", "father", "grandma", "grandpa",
        "grandmother", "grandfather", "brother", "sister", "son", "daughter", "husband", "wife", "bride",
        "uncle", "aunt", "cousin", "parent", "grandparent", "player", "runner", "dancer", "tourist", "student",
        "teacher", "policeman", "police officer", "firefighter", "fireman", "soldier", "worker", "crowd",
        "spectator", "audience", "passenger", "pedestrian", "athlete", "musician", "singer", "family member",
        "family", "team",
    ), "person"),
    "bike": "bicycle", "automobile": "car", "sedan": "car", "taxi": "car", "suv": "car",
    "motorbike": "motorcycle", "plane": "airplane", "aeroplane": "airplane", "jet": "airplane",
    "aircraft": "airplane", "locomotive": "train", "lorry": "truck", "ship": "boat", "sailboat": "boat",
    "yacht": "boat", "kayak": "boat", "traffic signal": "traffic light", "stoplight": "traffic light",
    "hydrant": "fire hydrant", "kitten": "cat", "kitty": "cat", "puppy": "dog", "pup": "dog", "doggy": "dog",
    "pony": "horse", "foal": "horse", "lamb": "sheep", "cattle": "cow", "calf": "cow", "rucksack": "backpack",
    "knapsack": "backpack", "necktie": "tie", "luggage": "suitcase", "baggage": "suitcase", "ball": "sports ball",
    "football": "sports ball", "racket": "tennis racket", "racquet": "tennis racket", "mug": "cup",
    "doughnut": "donut", "sofa": "couch", "houseplant": "potted plant", "table": "dining table",
    "television": "tv", "tv set": "tv", "phone": "cell phone", "cellphone": "cell phone",
    "smartphone": "cell phone", "mobile phone": "cell phone", "fridge": "refrigerator",
    "microwave oven": "microwave", "hair dryer": "hair drier", "hairdryer": "hair drier", "teddy": "teddy bear",
    "ski": "skis",
}

# Surface words left out of text matching: their common sense in prose is not the object (verbs, colours,
# names, body parts, other meanings). They stay in the vocabulary as model labels.
AMBIGUOUS_WORDS: frozenset[str] = frozenset((
    "orange", "fly", "tick", "cricket", "admiral", "ringlet", "monarch", "jay", "robin", "kite bird",
    "impala", "patas", "titi", "pug", "chow", "pembroke", "cardigan", "newfoundland", "lhasa", "cairn",
    "basset", "redbone", "clumber", "papillon", "angora", "puffer", "gar", "coho", "bow", "brass", "chain",
    "chest", "coil", "file", "hook", "iron", "jersey", "knot", "liner", "monitor", "mortar", "nail", "nipple",
    "organ", "packet", "pitcher", "pole", "puck", "reel", "safe", "scale", "screen", "shield", "slot",
    "spindle", "stage", "stole", "suit", "swing", "switch", "tank", "torch", "upright", "vacuum", "vault",
    "velvet", "washer", "wing", "wool", "wreck", "trifle", "dough", "bubble", "buckeye", "hip", "ear",
    "notebook", "bat", "mouse", "tie", "remote", "crane", "loafer", "groom", "racer", "sorrel", "ram", "cock",
    "drake", "pick", "rule", "pirate", "dock", "web site", "whistle", "buckle", "clog", "hamper", "screw",
    "spotlight", "lighter", "chime", "slug", "loggerhead", "daisy", "capuchin", "cougar", "weasel", "badger",
))

# Plurals that are unambiguous where the singular is not ("oranges" are fruit; "orange" is often a colour).
_PLURAL_ONLY: Mapping[str, str] = {"oranges": "orange"}

_IRREGULAR_PLURALS: Mapping[str, str] = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "policeman": "policemen",
    "fireman": "firemen", "gentleman": "gentlemen", "mouse": "mice", "knife": "knives", "goose": "geese",
    "foot": "feet", "tooth": "teeth", "sheep": "sheep", "fish": "fish", "calf": "calves", "leaf": "leaves",
    "shelf": "shelves", "wolf": "wolves", "loaf": "loaves", "lady": "ladies", "skis": "skis",
    "scissors": "scissors", "people": "people", "cattle": "cattle", "luggage": "luggage",
    "baggage": "baggage", "broccoli": "broccoli", "jeans": "jeans", "sunglasses": "sunglasses",
    "binoculars": "binoculars",
}


def _normalise(text: str) -> str:
    text = text.lower().replace("'s ", " ").replace("’s ", " ")
    text = re.sub(r"['’]", "", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def plural(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _forms(phrase: str) -> set[str]:
    words = _normalise(phrase).split()
    if not words:
        return set()
    return {" ".join(words), " ".join([*words[:-1], plural(words[-1])])}


def imagenet_term(name: str) -> str:
    """The term of an ImageNet class name (its lower-case name, or a clearer one where the name misleads)."""
    return _IMAGENET_RENAMED.get(name, name).lower()


@cache
def _parents() -> dict[str, str]:
    """ImageNet term -> the COCO category it is a kind of."""
    parents: dict[str, str] = {}
    for span, coco in _COCO_PARENT_RANGES:
        for index in span:
            parents[imagenet_term(IMAGENET_CLASSES[index])] = coco
    for coco, names in _COCO_PARENT_NAMES.items():
        for name in names:
            parents[imagenet_term(name)] = coco
    for term, coco in parents.items():
        if term == coco:
            raise AssertionError(f"{term} is its own parent")
    return parents


@cache
def vocabulary() -> frozenset[str]:
    """Every term: the 80 COCO names and the 1000 ImageNet classes' terms."""
    return frozenset(COCO_NAMES) | frozenset(imagenet_term(name) for name in IMAGENET_CLASSES)


@cache
def _surface_index() -> tuple[dict[str, str], int]:
    """Normalised surface phrase (singular or plural) -> term, and the longest phrase in words."""
    index: dict[str, str] = {}
    terms = sorted(vocabulary())  # a fixed order: set order would change with each process's string hashing
    for term in terms:  # derived plurals first, so that a term spelled like another's plural keeps its own name
        for form in _forms(term):
            index.setdefault(form, term)
    for term in terms:
        index[_normalise(term)] = term
    for name in IMAGENET_CLASSES:  # the original names still find their (renamed) term, unless ambiguous
        for form in _forms(name):
            index.setdefault(form, imagenet_term(name))
    for word, term in SYNONYMS.items():
        if term not in vocabulary():
            raise AssertionError(f"synonym {word!r} maps to {term!r}, which is no vocabulary term")
        for form in _forms(word):
            index[form] = term
    for word in AMBIGUOUS_WORDS:
        for form in _forms(word):
            index.pop(form, None)
    index.update(_PLURAL_ONLY)
    return index, max(len(phrase.split()) for phrase in index)


def noun_mentions(text: str) -> list[str]:
    """Every mention of a vocabulary term in `text`, in order, repeats kept (longest phrase wins)."""
    index, longest = _surface_index()
    words = _normalise(text).split()
    found: list[str] = []
    position = 0
    while position < len(words):
        for size in range(min(longest, len(words) - position), 0, -1):
            term = index.get(" ".join(words[position : position + size]))
            if term is not None:
                found.append(term)
                position += size
                break
        else:
            position += 1
    return found


def concrete_nouns(text: str) -> list[str]:
    """The vocabulary terms `text` mentions, each once, in order of first mention."""
    return list(dict.fromkeys(noun_mentions(text)))


def coco_category(term: str) -> str | None:
    """The COCO category a term is or belongs to (`german shepherd` -> `dog`), None if outside COCO."""
    if term in COCO_LABEL_MAP.values():
        return term
    return _parents().get(term)


@cache
def _imagenet_by_term() -> dict[str, str]:
    return {imagenet_term(name): name for name in IMAGENET_CLASSES}


def model_labels(text: str) -> tuple[list[str], list[str]]:
    """What the models could have said about the things `text` names: (COCO detector labels, ImageNet class
    names as the classifier emits them), each once, in order of mention — e.g. for training facts derived from a
    dialogue. "puppy" gives the COCO label "dog"; "German shepherd" gives "dog" and ImageNet's "German shepherd"."""
    coco: dict[str, None] = {}
    imagenet: dict[str, None] = {}
    for term in concrete_nouns(text):
        category = coco_category(term)
        if category is not None:
            coco[category] = None
        name = _imagenet_by_term().get(term)
        if name is not None:
            imagenet[name] = None
    return list(coco), list(imagenet)


def supporting_terms(
    caption: str = "", object_labels: Iterable[str] = (), image_labels: Iterable[str] = ()
) -> frozenset[str]:
    """Terms a photo's evidence supports: what its caption names, the detector's COCO labels, the classifier's
    ImageNet labels (with the COCO category each is a kind of)."""
    terms = set(concrete_nouns(caption)) if caption else set()
    for parent_term in concrete_nouns(caption) if caption else ():
        parent = coco_category(parent_term)
        if parent is not None:
            terms.add(parent)
    terms.update(label.lower() for label in object_labels)
    for name in image_labels:
        term = imagenet_term(name)
        terms.add(term)
        parent = _parents().get(term)
        if parent is not None:
            terms.add(parent)
    return frozenset(terms)


def is_supported(term: str, support: frozenset[str]) -> bool:
    """A mention is supported when its own term is; a general mention ("dog") is supported by a specific fact
    ("German shepherd", added to `support` as its parent), never the other way round."""
    return term in support
