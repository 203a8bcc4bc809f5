"""WordNet for METEOR without a download: built from Debian's ``wordnet-base`` files on first use.

NLTK looks for ``corpora/wordnet`` under ``nltk.data.path``. When it is missing and ``/usr/share/wordnet``
exists (``apt-get install wordnet-base wordnet-sense-index``, see ``.ci/setup-system.sh``), the files are
copied once into ``$TEXTGYM_CACHE/nltk_data/corpora/wordnet`` with the ``lexnames`` index Debian lacks,
written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textgym.io import atomic_folder

DEBIAN_WORDNET = Path("/usr/share/wordnet")
# WordNet 3.0 lexicographer files, in file-number order, with their syntactic category (1 noun ... 4 adverb).
LEXNAMES = (
    [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4)]
    + [
        (f"noun.{n}", 1)
        for n in ["Tops", "act", "animal", "artifact", "attribute", "body", "cognition", "communication", "event"]
    ]
    + [
        (f"noun.{n}", 1)
        for n in ["feeling", "food", "group", "location", "motive", "object", "person", "phenomenon", "plant"]
    ]
    + [
        (f"noun.{n}", 1)
        for n in ["possession", "process", "quantity", "relation", "shape", "state", "substance", "time"]
    ]
    + [
        (f"verb.{n}", 2)
        for n in ["body", "change", "cognition", "communication", "competition", "consumption", "contact"]
    ]
    + [
        (f"verb.{n}", 2)
        for n in ["creation", "emotion", "motion", "perception", "possession", "social", "stative", "weather"]
    ]
    + [("adj.ppl", 3)]
)
_FILES = ("data.", "index.", ".exc", "cntlist.rev")


def lexnames_text() -> str:
    """The 45-line ``lexnames`` file: ``NN<TAB>name<TAB>category``."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def ensure_wordnet(source: Path = DEBIAN_WORDNET) -> None:
    """Make ``nltk.corpus.wordnet`` loadable, building it from ``source`` if NLTK cannot find it.

    Raises:
        LookupError: WordNet is neither installed for NLTK nor in ``source`` (says what to apt-get install).
    """
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
        return
    except LookupError:
        pass
    from textgym.models import cache_dir

    root = cache_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if not (target / "lexnames").exists():
        if not (source / "data.noun").exists():
            raise LookupError(
                "METEOR needs WordNet: apt-get install -y wordnet-base wordnet-sense-index "
                "(see scripts/setup-system.sh), or put NLTK's wordnet corpus on NLTK_DATA"
            )
        _build(source, target)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))


def _build(source: Path, target: Path) -> None:
    with atomic_folder(target) as tmp:  # kept as is if another process built it first
        for path in source.iterdir():
            if path.is_file() and any(part in path.name for part in _FILES):
                shutil.copyfile(path, tmp / path.name)
        (tmp / "lexnames").write_text(lexnames_text())
