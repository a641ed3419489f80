"""Real token-level tasks read from the docstrings of installed libraries: tagging names, answering "what does X do?".

Nothing here is annotated by hand: the labels are derived mechanically from
the code (read with `ast`; nothing is imported or run), by the rules below.
Words are `tfptm.data.words.split_words` words (BERT's basic split, every
punctuation character, `_` included, a word of its own), the rule the models use.

The documented units are the docstrings of functions, methods and classes
(module level, in classes, and under a module-level `if`/`try`; functions
nested in functions are skipped). A unit's *parameters* are the names in its
`ast` signature (a class's are those of the `__init__` it defines): positional,
keyword-only, `*args` and `**kwargs` names, without `self`, `cls` and `_`.

**Tagging** (`tagging_task`, `tag_docstring`, `tag_source`): BIO tags over
the words of a docstring, entity types `PARAM` and `CODE`:

- An *identifier* is a maximal run of adjacent words (no whitespace between
  them) made of letters, digits and `_` that forms a Python identifier
  (`max_iter` is the three words `max _ iter`). A *name* is one identifier or
  several joined by single adjacent `.` words (`np . ndarray`); a leading or
  trailing `.` is not part of it.
- *Code* text is the inside of a backtick span (rst's ``` ``x`` ``` or `` `x` ``,
  Sphinx roles such as :func:`numpy.sum` included; not across a blank line).
  Not code, and never tagged: a role's name (`:func:`), the content of a `:math:` role, the
  title of a `title <target>` span (the target is code), a link
  (`` `text`_ ``), and URLs (a whitespace-free stretch holding `://` or
  starting `www.`). A name joined by `-` to a word (`n-dimensional`,
  `x-axis`) is not tagged.
- A name in code text is `PARAM` when it is one identifier equal to a
  parameter's name, else `CODE` (`` `None` ``, `` `np.sum` ``, `` `fit` ``).
- Outside code text, a name of two or more identifiers is `CODE`
  (`np.ndarray`, `self.coef_`), unless every identifier is one character
  (`e.g`, `i.e`); a one-identifier name equal to a parameter's name is `PARAM`,
  except that a parameter named by an English function word (`FUNCTION_WORDS`:
  `a`, `in`, `out`, ...) is tagged only in code text or where its name opens a
  parameter entry (see below). Everything else is `O`.

The matching is literal and case-sensitive, so it is noisy where a parameter is
named by an ordinary word: with a parameter `copy`, "returns a copy" tags `copy`.

A tagging *example* is a stretch of one docstring: its paragraphs (blank-line
separated), with doctests (from a line starting `>>>` to the next blank line),
Markdown code blocks (```` ``` ```` fences, never tagged) and section underlines
(`----------`) left out, packed in order into pieces of at most `max_words`
words (a longer paragraph is cut at line ends, a longer line at a word that
starts no `I-` tag); pieces under `min_words` words are dropped.

**Question answering** (`qa_task`, `qa_source`, `parameter_entries`):
SQuAD v1.1 examples. The context is a unit's whole docstring (as
`ast.get_docstring` cleans it); each question asks what one of its parameters
does, in one of `QUESTION_TEMPLATES` (chosen by a CRC32 of the unit and
parameter names, so a question does not change with the seed). The answer is
the first sentence of the parameter's description, without its final period:
the description starts after the entry's name line (NumPy style: a `Parameters`
section underlined with dashes, entries `x : type` or `x1, x2 : type`,
description on the lines indented below) or after `x:` / `x (type):` (Google
style: an `Args:` section, entries indented below it), and runs to the first
blank line, dedent or next entry; its first sentence ends at the first `.`
followed by whitespace (or the end) that does not close a dotted abbreviation
(`e.g.`, `i.e.`) or a word in `ABBREVIATIONS`, else it is the whole
description. Only entries naming a parameter of the signature count, and
answers over `max_answer_words` words are dropped.

**Splits**: by source file, no file in two splits (files are shuffled with the
seed and dealt to test, validation and train in proportion to the requested
sizes), then each split is sampled down to its size, its files taking turns
(so that one file with hundreds of functions does not fill a split). A
docstring text seen in an earlier file (in the fixed reading order) is left
out, so copied docstrings cannot leak across splits. The data depend on the installed
versions, recorded in the task's `info`.

Tasks by name: `libraries` (NumPy, scikit-learn, Matplotlib, Keras, the
packages tfptm installs, as `tfptm.datasets.docstrings.TASKS`) and `stdlib`
(the standard-library packages of the `stdlib` docstring task: a smaller
tagging task; so few of their docstrings have parameter sections that its QA
task stops with an error, as any task with an empty split does); or any
installed top-level packages through `packages=`.

The module imports no TensorFlow when imported (`split_words` is imported on first use).

Example:
>>> tokens, tags = tag_docstring("Clip `x` to ``max_iter`` with np.clip.", ["x", "max_iter"])
>>> [f"{token}/{tag}" for token, tag in zip(tokens, tags) if tag != "O"]
['x/B-PARAM', 'max/B-PARAM', '_/I-PARAM', 'iter/I-PARAM', 'np/B-CODE', './I-CODE', 'clip/I-CODE']
"""

import ast
import bisect
import dataclasses
import importlib.util
import re
import zlib
from pathlib import Path

import numpy as np

from tfptm.datasets.docstrings import TASKS, _version as _docstrings_version, source_trees
from tfptm.errors import TfptmError

TAG_NAMES = ["O", "B-PARAM", "I-PARAM", "B-CODE", "I-CODE"]

#: Parameter names that are English function words: tagged only in code text or as a parameter entry's name.
FUNCTION_WORDS = frozenset(
    "a an the i in on at to of by for from with as is it be or and not no nor if all any out up so do this that "
    "these those one some each other which what who where when how then than but into over under via per can may "
    "will must has have".split())

#: Words whose following `.` does not end a sentence (besides the ends of `e.g.` and `i.e.`).
ABBREVIATIONS = frozenset("etc vs cf approx resp eq eqs Eq fig Fig no No ref Ref".split())

QUESTION_TEMPLATES = (
    "What does {param} do?",
    "What is the {param} argument of {function} for?",
    "What does the parameter {param} of {function} mean?",
    "What is {param} in {function}?",
    "How is the {param} parameter of {function} described?",
)

TAGGING_RULE = ("PARAM: a name (identifier, or identifiers joined by adjacent '.') that is one identifier equal to "
                "a parameter of the documented function (its ast signature; a class: its __init__; no self/cls), in "
                "backticks or in prose (function-word names only in backticks or as a parameter entry's name); CODE: "
                "any other name in backticks, or a dotted name of 2+ identifiers (not all one character) in prose; "
                "role names, :math:, link titles and URLs are O. BIO over split_words words.")
QA_RULE = ("context: a function's or class's whole docstring (ast.get_docstring); answer: the first sentence, "
           "without its final period, of the description of a signature parameter in a NumPy-style 'Parameters' "
           "section or a Google-style 'Args:' section.")

_SIGNATURE_SKIPPED = {"self", "cls", "_"}
_NUMPY_SECTIONS = {"parameters", "other parameters", "arguments", "keyword arguments", "args"}
_GOOGLE_SECTIONS = {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments", "Kwargs",
                    "Other Parameters"}
_UNDERLINE = re.compile(r"\s*([-=~^*+#])\1{2,}\s*")
_NUMPY_ENTRY = re.compile(r"(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?")
_GOOGLE_ENTRY = re.compile(r"(\*{0,2}[A-Za-z_]\w*)(?:\s*\(.*?\))?\s*:(?:\s+|$)")
_NAME = re.compile(r"\*{0,2}([A-Za-z_]\w*)")
_URL = re.compile(r"\S*(?:://|\bwww\.)\S*")
_ROLE = re.compile(r":([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)*):(?=`)")
_DOUBLE_TICKS = re.compile(r"``(.+?)``", re.S)
_SINGLE_TICKS = re.compile(r"`([^`]+)`(_{0,2})")
_TITLED = re.compile(r"(.*?)\s*<([^<>]+)>\s*", re.S)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_FENCE = re.compile(r"^[ \t]*```.*?(?:^[ \t]*```[^\n]*$|\Z)", re.M | re.S)

_NORMAL, _CODE, _MASKED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class TokenTask:
    """A token classification task: lists of `{"tokens": [...], "tags": [...]}` per split, the tag names, provenance."""

    name: str
    train: list
    validation: list
    test: list
    tag_names: list
    info: dict


@dataclasses.dataclass(frozen=True)
class QATask:
    """An extractive question answering task: a SQuAD v1.1-style dict per split (`tfptm.data.squad.write_squad`
    writes one), provenance."""

    name: str
    train: dict
    validation: dict
    test: dict
    info: dict


@dataclasses.dataclass(frozen=True)
class ParameterEntry:
    """One documented parameter: its name, where the name sits, and where its description's first paragraph sits."""

    name: str
    name_start: int
    description_start: int
    description_end: int


@dataclasses.dataclass(frozen=True)
class _Unit:
    file: str
    qualname: str  # module.Class.function
    name: str  # Class.function, as a question names it
    lineno: int
    params: tuple
    docstring: str


def _split_words(text):
    from tfptm.data.words import split_words  # imports TensorFlow: only when words are first needed

    return split_words(text)


# ---------------------------------------------------------------------------------------------------- reading code

def _params(function):
    if function is None:
        return ()
    arguments = function.args
    names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return tuple(dict.fromkeys(name for name in names if name not in _SIGNATURE_SKIPPED))


def _units(tree, file, module):
    """The documented functions, methods and classes of a module's tree, in source order."""
    found = []

    def visit(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef):
                init = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                             and n.name == "__init__"), None)
                _add(found, node, file, module, prefix, _params(init))
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                _add(found, node, file, module, prefix, _params(node))
            elif isinstance(node, ast.If):
                visit(node.body + node.orelse, prefix)
            elif isinstance(node, ast.Try):
                visit(node.body + [n for h in node.handlers for n in h.body] + node.orelse + node.finalbody, prefix)

    visit(tree.body, "")
    return found


def _add(found, node, file, module, prefix, params):
    docstring = ast.get_docstring(node)
    if docstring and docstring.strip():
        name = prefix + node.name
        found.append(_Unit(file, f"{module}.{name}", name, node.lineno, params, docstring))


def _package_units(packages):
    """`({file: [units]}, {package: version})` for installed packages, files in reading order."""
    by_file, versions = {}, {}
    for package in packages:
        spec = importlib.util.find_spec(package)
        single = spec is not None and spec.origin is not None and Path(spec.origin).name != "__init__.py"
        for relative, tree in source_trees(package):
            parts = list(relative.with_suffix("").parts)
            module = package if single else ".".join([package] + (parts[:-1] if parts[-1] == "__init__" else parts))
            file = f"{package}/{relative.as_posix()}"
            by_file[file] = _units(tree, file, module)
        versions[package] = _version(package)
    return by_file, versions


def _version(package):
    """The installed version of a package (its distribution found by name when the two differ, e.g. absl-py)."""
    version = _docstrings_version(package)
    if version == "unknown":
        import importlib.metadata

        for distribution in importlib.metadata.packages_distributions().get(package, []):
            return importlib.metadata.version(distribution)
    return version


def _packages_of(name, packages):
    if packages is not None:
        packages = [packages] if isinstance(packages, str) else list(packages)
        if not packages:
            raise TfptmError("docstring_tokens: packages=[] names no package; expected importable package names")
        dotted = [package for package in packages if "." in package]
        if dotted:  # finding a subpackage would import its parent package
            raise TfptmError(f"docstring_tokens: packages {dotted} are subpackages; expected top-level packages "
                             "(their sources are read without importing them)")
        return packages
    if name not in TASKS:
        raise TfptmError(f"docstring_tokens: unknown task {name!r}; expected one of {', '.join(TASKS)} "
                         "(or packages=[...])")
    return [package for class_packages in TASKS[name].values() for package in class_packages]


# ---------------------------------------------------------------------------------------------- parameter sections

def _lines(text):
    """`[(start, end)]` of each line of `text`, without its line break."""
    out, start = [], 0
    for line in text.split("\n"):
        out.append((start, start + len(line)))
        start += len(line) + 1
    return out


def _indent(line):
    return len(line) - len(line.lstrip())


def parameter_entries(docstring):
    """The parameters `docstring` documents in NumPy-style `Parameters` or Google-style `Args:` sections, in order,
    as `ParameterEntry`s (offsets into `docstring`; a description is its first paragraph; see the module doc).

    Example:
    >>> doc = "Sum.\\n\\nParameters\\n----------\\na, b : int\\n    The terms. Any ints.\\n\\nReturns\\n-------\\nint"
    >>> [(e.name, doc[e.description_start:e.description_end]) for e in parameter_entries(doc)]
    [('a', 'The terms. Any ints.'), ('b', 'The terms. Any ints.')]
    >>> doc = "Scale.\\n\\nArgs:\\n    x (float): The value,\\n        in metres.\\n    factor: How much."
    >>> [(e.name, doc[e.description_start:e.description_end]) for e in parameter_entries(doc)]
    [('x', 'The value,\\n        in metres.'), ('factor', 'How much.')]
    """
    lines = _lines(docstring)
    text = [docstring[s:e] for s, e in lines]
    entries = []
    i = 0
    while i < len(lines):
        stripped = text[i].strip()
        if stripped.lower().rstrip(":") in _NUMPY_SECTIONS and _is_numpy_header(text, i):
            i = _numpy_section(lines, text, i + 2, _indent(text[i]), entries)
        elif stripped.endswith(":") and stripped[:-1] in _GOOGLE_SECTIONS:
            i = _google_section(lines, text, i + 1, _indent(text[i]), entries)
        else:
            i += 1
    return entries


def _description(lines, text, i, deeper_than):
    """The last line index (exclusive) of a description paragraph starting at line `i`: it stops at a blank line or
    at a line indented no deeper than `deeper_than`."""
    while i < len(lines) and text[i].strip() and _indent(text[i]) > deeper_than:
        i += 1
    return i


def _is_numpy_header(text, i):
    """Whether line `i` is a NumPy-style section title (underlined with dashes)."""
    return i + 1 < len(text) and bool(text[i].strip()) and re.fullmatch(r"\s*-{3,}\s*", text[i + 1]) is not None


def _numpy_section(lines, text, i, base, entries):
    while i < len(lines) and not text[i].strip():
        i += 1
    entry_indent = _indent(text[i]) if i < len(lines) else base
    while i < len(lines):
        line = text[i]
        if not line.strip():
            i += 1
            continue
        if _indent(line) < entry_indent or _is_numpy_header(text, i):
            break
        if _indent(line) > entry_indent:  # a later paragraph of the previous description
            i += 1
            continue
        match = _NUMPY_ENTRY.fullmatch(line.strip())
        end = _description(lines, text, i + 1, entry_indent)
        if match and end > i + 1:
            start = lines[i + 1][0] + _indent(text[i + 1])
            stop = lines[end - 1][1] - (len(text[end - 1]) - len(text[end - 1].rstrip()))
            offset = lines[i][0] + _indent(line)
            for name in _NAME.finditer(match.group(1)):
                entries.append(ParameterEntry(name.group(1), offset + name.start(1), start, stop))
        i = max(end, i + 1)
    return i


def _google_section(lines, text, i, base, entries):
    while i < len(lines) and not text[i].strip():
        i += 1
    if i >= len(lines) or _indent(text[i]) <= base:
        return i
    entry_indent = _indent(text[i])
    while i < len(lines):
        line = text[i]
        if not line.strip():
            i += 1
            continue
        if _indent(line) <= base:
            break
        if _indent(line) > entry_indent:
            i += 1
            continue
        match = _GOOGLE_ENTRY.match(line, entry_indent)
        end = _description(lines, text, i + 1, entry_indent)
        if match:
            rest = line[match.end():]
            if rest.strip():
                start = lines[i][0] + match.end()
            elif end > i + 1:
                start = lines[i + 1][0] + _indent(text[i + 1])
            else:
                start = None
            if start is not None:
                stop = lines[end - 1][1] - (len(text[end - 1]) - len(text[end - 1].rstrip()))
                entries.append(ParameterEntry(match.group(1), lines[i][0] + match.start(1), start, stop))
        i = max(end, i + 1)
    return i


def _first_sentence(docstring, start, end):
    """`(start, end)` of the first sentence of `docstring[start:end]`, without its final period."""
    words = _split_words(docstring[start:end])
    for k, (word, s, e) in enumerate(words):
        if word != "." or k == 0:
            continue
        if e < end - start and not docstring[start + e].isspace():
            continue
        before, bs, be = words[k - 1]
        dotted = k >= 2 and words[k - 2][0] == "." and words[k - 2][2] == bs  # the end of e.g., i.e.
        if be != s or len(before) == 1 and dotted or before in ABBREVIATIONS:
            continue
        return start, start + s
    return start, end


# ---------------------------------------------------------------------------------------------------------- tagging

def _zones(docstring):
    """Per character: `_NORMAL`, `_CODE` (inside backticks) or `_MASKED` (never tagged)."""
    zones = np.zeros(len(docstring), dtype=np.int8)
    for match in _URL.finditer(docstring):
        zones[match.start():match.end()] = _MASKED
    roles = {}
    for match in _ROLE.finditer(docstring):
        zones[match.start():match.end()] = _MASKED
        roles[match.end()] = match.group(1)
    blanked = list(docstring)
    for match in _FENCE.finditer(docstring):  # Markdown code blocks: left out, their backticks pair with nothing
        zones[match.start():match.end()] = _MASKED
        blanked[match.start():match.end()] = " " * (match.end() - match.start())

    def mark(match, start, end, link=False):
        content = docstring[start:end]
        if _BLANK_LINE.search(content):
            return False
        role = roles.get(match.start(), "")
        if link or role.split(":")[-1] == "math":
            zones[start:end] = _MASKED
        else:
            titled = _TITLED.fullmatch(content)
            if titled and titled.group(1).strip():
                zones[start:start + titled.start(2)] = _MASKED
                start, end = start + titled.start(2), start + titled.end(2)
            code = zones[start:end] != _MASKED
            zones[start:end][code] = _CODE
        blanked[match.start():match.end()] = " " * (match.end() - match.start())
        return True

    for match in _DOUBLE_TICKS.finditer("".join(blanked)):
        mark(match, match.start(1), match.end(1))
    for match in _SINGLE_TICKS.finditer("".join(blanked)):
        mark(match, match.start(1), match.end(1), link=bool(match.group(2)))
    return zones


def _is_name_word(word):
    return word == "_" or ("x" + word).isidentifier()


def _names(words):
    """The names among `words`: lists of word indices (identifiers joined by adjacent `.` words)."""
    runs, k = [], 0
    while k < len(words):  # identifiers: maximal runs of adjacent letter/digit/_ words
        if not _is_name_word(words[k][0]):
            k += 1
            continue
        j = k + 1
        while j < len(words) and _is_name_word(words[j][0]) and words[j][1] == words[j - 1][2]:
            j += 1
        runs.append(list(range(k, j)))
        k = j
    names, current = [], None
    for run in runs:
        identifier = "".join(words[k][0] for k in run)
        if not identifier.isidentifier():
            current = None
            continue
        dot = run[0] - 1
        if (current is not None and dot == current[-1][-1] + 1 and words[dot][0] == "."
                and words[dot][1] == words[dot - 1][2] and words[run[0]][1] == words[dot][2]):
            current.append(run)
        else:
            current = [run]
            names.append(current)
    return names


def _hyphenated(words, first, last):
    """Whether the name `words[first:last + 1]` is joined by an adjacent `-` to an adjacent word (`n-dimensional`)."""
    if first >= 2 and words[first - 1][0] == "-" and words[first - 2][0].isalnum() \
            and words[first - 2][2] == words[first - 1][1] and words[first - 1][2] == words[first][1]:
        return True
    return (last + 2 < len(words) and words[last + 1][0] == "-" and words[last + 2][0].isalnum()
            and words[last][2] == words[last + 1][1] and words[last + 1][2] == words[last + 2][1])


def _tag_words(docstring, words, params):
    params = set(params) - _SIGNATURE_SKIPPED
    zones = _zones(docstring)
    entry_names = {entry.name_start for entry in parameter_entries(docstring)}
    tags = ["O"] * len(words)
    for name in _names(words):
        first, last = name[0][0], name[-1][-1]
        span = zones[words[first][1]:words[last][2]]
        if (span == _MASKED).any() or _hyphenated(words, first, last):
            continue
        identifiers = ["".join(words[k][0] for k in run) for run in name]
        if zones[words[first][1]] == _CODE:
            kind = "PARAM" if len(name) == 1 and identifiers[0] in params else "CODE"
        elif len(name) > 1:
            kind = None if all(len(identifier) == 1 for identifier in identifiers) else "CODE"
        elif identifiers[0] in params and (identifiers[0] not in FUNCTION_WORDS or words[first][1] in entry_names):
            kind = "PARAM"
        else:
            kind = None
        if kind:
            tags[first] = "B-" + kind
            tags[first + 1:last + 1] = ["I-" + kind] * (last - first)
    return tags


def tag_docstring(docstring, params):
    """`(tokens, tags)`: every `split_words` word of `docstring` and its BIO tag for a function whose parameters are
    `params` (the rule of the module doc; no words are left out here).

    Example:
    >>> tokens, tags = tag_docstring("Fit (see :func:`sklearn.base.clone`); n_jobs=None runs 1-D jobs.", ["n_jobs"])
    >>> [(token, tag) for token, tag in zip(tokens, tags) if tag != "O"]
    [('sklearn', 'B-CODE'), ('.', 'I-CODE'), ('base', 'I-CODE'), ('.', 'I-CODE'), ('clone', 'I-CODE'),
     ('n', 'B-PARAM'), ('_', 'I-PARAM'), ('jobs', 'I-PARAM')]
    """
    words = _split_words(docstring)
    return [w for w, _, _ in words], _tag_words(docstring, words, params)


def _safe_cut(tags, indices, limit):
    """Where to cut `indices` (longer than `limit`) so that the next piece does not start inside an entity."""
    cut = limit
    while cut > 1 and tags[indices[cut]].startswith("I-"):
        cut -= 1
    return cut


def _pieces(docstring, words, tags, min_words, max_words):
    """Lists of word indices: the docstring's kept paragraphs packed into pieces (see the module doc)."""
    lines = _lines(docstring)
    starts = [s for s, _ in lines]
    line_words = [[] for _ in lines]
    for k, (_, start, _) in enumerate(words):
        line_words[bisect.bisect_right(starts, start) - 1].append(k)
    fenced = set()  # Markdown code blocks: left out, like doctests
    for match in _FENCE.finditer(docstring):
        first, last = (bisect.bisect_right(starts, offset) - 1 for offset in (match.start(), max(match.end() - 1, 0)))
        fenced.update(range(first, last + 1))
    paragraphs, current, doctest = [], [], False
    for number, (s, e) in enumerate(lines + [(0, 0)]):  # a last blank line closes the last paragraph
        line = docstring[s:e] if number < len(lines) and number not in fenced else ""
        doctest = bool(line.strip()) and (doctest or line.lstrip().startswith(">>>"))  # from >>> to a blank line
        if not line.strip() or doctest:
            if current:
                paragraphs.append([line_words[n] for n in current])
            current = []
        elif not _UNDERLINE.fullmatch(line):
            current.append(number)
    atoms = []  # paragraphs, or pieces of a long paragraph cut at line ends (else at a word starting no I- tag)
    for paragraph in paragraphs:
        flat = [k for line in paragraph for k in line]
        line_starts, position = set(), 0
        for line in paragraph:
            line_starts.add(position)
            position += len(line)
        p = 0
        while len(flat) - p > max_words:
            ends = [q for q in range(p + max_words, p, -1) if q in line_starts and not tags[flat[q]].startswith("I-")]
            cut = ends[0] if ends else p + _safe_cut(tags, flat[p:], max_words)
            atoms.append(flat[p:cut])
            p = cut
        atoms.append(flat[p:])
    pieces, piece = [], []
    for atom in atoms:
        if piece and len(piece) + len(atom) > max_words:
            if len(piece) >= min_words:
                pieces.append(piece)
            piece = []
        piece = piece + atom
    if len(piece) >= min_words:
        pieces.append(piece)
    return pieces


def _tag_unit(unit, min_words, max_words):
    words = _split_words(unit.docstring)
    if not words:
        return []
    tags = _tag_words(unit.docstring, words, unit.params)
    return [{"tokens": [words[k][0] for k in piece], "tags": [tags[k] for k in piece]}
            for piece in _pieces(unit.docstring, words, tags, min_words, max_words)]


def tag_source(source, module="source", min_words=20, max_words=200):
    """The tagging examples of Python `source` code (a string), as the tasks make them from each file.

    Example:
    >>> source = '''
    ... def clip(values, low=0):
    ...     \"\"\"Clips `values` from below at ``low``, like :func:`numpy.maximum` does with the same arguments.\"\"\"
    ... '''
    >>> [example] = tag_source(source, min_words=5)
    >>> [(token, tag) for token, tag in zip(example["tokens"], example["tags"]) if tag != "O"]
    [('values', 'B-PARAM'), ('low', 'B-PARAM'), ('numpy', 'B-CODE'), ('.', 'I-CODE'), ('maximum', 'I-CODE')]
    """
    examples = []
    for unit in _units(ast.parse(source), "<source>", module):
        examples += _tag_unit(unit, min_words, max_words)
    return examples


def _check_sizes(**sizes):
    for name, size in sizes.items():
        if size is not None and (not isinstance(size, (int, np.integer)) or size < 0):
            raise TfptmError(f"docstring_tokens: {name}={size!r}; expected a count >= 0 (or None: all)")


def _deal_files(counts, sizes, rng):
    """`{file: split}`: files shuffled and dealt to test, validation, train in proportion to the requested sizes."""
    total = sum(counts.values())
    rest = max(total - sum(size for size in sizes.values() if size is not None), 0)
    unsized = sum(size is None for size in sizes.values()) or 1
    wanted = {split: rest / unsized if size is None else size for split, size in sizes.items()}  # None: share the rest
    weight = sum(wanted.values()) or 1
    files = [file for file in counts if counts[file]]
    order = [files[i] for i in rng.permutation(len(files))]
    bounds = np.cumsum([wanted["test"], wanted["validation"]]) / weight * total
    dealt, seen = {}, 0
    for file in order:
        dealt[file] = "test" if seen < bounds[0] else "validation" if seen < bounds[1] else "train"
        seen += counts[file]
    return dealt


def _take(groups, size, rng, count=len):
    """Up to `size` items (as `count` counts an item's size, `None`: all) of `groups` (lists of items, one per file),
    shuffled: the files take turns in a seeded order, each giving its items in a seeded order, so a split draws on as
    many of its files as it can (a file with hundreds of functions does not fill it)."""
    queues = [[group[i] for i in rng.permutation(len(group))] for group in groups if group]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    chosen, total, depth = [], 0, 0
    while queues and (size is None or total < size):
        for queue in queues:
            if size is not None and total >= size:
                break
            chosen.append(queue[depth])
            total += count(queue[depth])
        depth += 1
        queues = [queue for queue in queues if depth < len(queue)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def tagging_task(name="libraries", seed=0, train_size=1500, validation_size=200, test_size=500, packages=None,
                 min_words=20, max_words=200, empty_share=0.1):
    """Builds the tagging task `name` (see the module doc) as a `TokenTask`, the same for the same seed and versions.

    Each split holds up to its size of examples (`None`: all), from its own
    files. Examples with no entity are kept with probability `empty_share`.
    `packages` (importable names) replaces the packages of `name`.

    Example:
    >>> task = tagging_task("email", packages=["email"], train_size=20, validation_size=5, test_size=5)
    >>> task.tag_names, len(task.train), len(task.test), task.info["versions"]["email"].startswith("python")
    (['O', 'B-PARAM', 'I-PARAM', 'B-CODE', 'I-CODE'], 20, 5, True)
    """
    _check_sizes(train_size=train_size, validation_size=validation_size, test_size=test_size)
    if not 0 < min_words <= max_words:
        raise TfptmError(f"tagging_task: min_words={min_words}, max_words={max_words}; expected 0 < min_words <= "
                         "max_words")
    packages = _packages_of(name, packages)
    rng = np.random.default_rng(seed)
    by_file, versions = _package_units(packages)
    examples, seen, dropped = {}, set(), {"duplicate": 0, "no_entity": 0}
    for file, units in by_file.items():
        examples[file] = []
        for unit in units:
            for example in _tag_unit(unit, min_words, max_words):
                key = tuple(example["tokens"])
                if key in seen:
                    dropped["duplicate"] += 1
                    continue
                seen.add(key)
                examples[file].append(example)
    for file in examples:  # one draw per example, in reading order: the same for the same seed
        kept = []
        for example in examples[file]:
            if any(tag != "O" for tag in example["tags"]) or rng.random() < empty_share:
                kept.append(example)
            else:
                dropped["no_entity"] += 1
        examples[file] = kept
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    dealt = _deal_files({file: len(found) for file, found in examples.items()}, sizes, rng)
    splits, files = {}, {}
    for split, size in sizes.items():
        files[split] = sorted(file for file, to in dealt.items() if to == split)
        splits[split] = _take([examples[file] for file in files[split]], size, rng, count=lambda example: 1)
    _check_not_empty("tagging_task", name, sizes, {split: len(found) for split, found in splits.items()}, "example")
    info = {"task": name, "packages": packages, "versions": versions, "seed": seed, "rule": TAGGING_RULE,
            "min_words": min_words, "max_words": max_words, "empty_share": empty_share,
            "sizes": {split: len(found) for split, found in splits.items()},
            "available": {split: sum(len(examples[f]) for f in files[split]) for split in splits},
            "entities": {split: _entity_counts(found) for split, found in splits.items()},
            "dropped": dropped, "files": files}
    return TokenTask(name, splits["train"], splits["validation"], splits["test"], list(TAG_NAMES), info)


def _check_not_empty(function, name, sizes, counts, what):
    empty = [split for split, size in sizes.items() if size != 0 and not counts[split]]
    if empty:
        raise TfptmError(f"{function} {name!r}: the {' and '.join(empty)} split(s) hold no {what} (the packages' "
                         f"files dealt to them have none); expected packages whose docstrings document more "
                         f"parameters, e.g. the 'libraries' task")


def _entity_counts(examples):
    counts = {}
    for example in examples:
        for tag in example["tags"]:
            if tag.startswith("B-"):
                counts[tag[2:]] = counts.get(tag[2:], 0) + 1
    return dict(sorted(counts.items()))


# ------------------------------------------------------------------------------------------- question answering

def _qa_unit(unit, max_answer_words, max_context_words):
    """`(article, number of questions)` for one documented unit, or None when it documents none of its parameters."""
    docstring = unit.docstring
    if max_context_words is not None and len(_split_words(docstring)) > max_context_words:
        return None
    qas, asked = [], set()
    for entry in parameter_entries(docstring):
        if entry.name not in unit.params or entry.name in asked:
            continue
        start, end = _first_sentence(docstring, entry.description_start, entry.description_end)
        answer = docstring[start:end]
        if not answer.strip() or answer.startswith(".") or len(_split_words(answer)) > max_answer_words:
            continue
        assert docstring[start:start + len(answer)] == answer
        asked.add(entry.name)
        template = QUESTION_TEMPLATES[zlib.crc32(f"{unit.qualname}:{entry.name}".encode()) % len(QUESTION_TEMPLATES)]
        qas.append({"id": f"{unit.qualname}@{unit.lineno}:{entry.name}",
                    "question": template.format(param=entry.name, function=unit.name),
                    "answers": [{"text": answer, "answer_start": start}]})
    if not qas:
        return None
    return {"title": unit.qualname, "paragraphs": [{"context": docstring, "qas": qas}]}


def qa_source(source, module="source", max_answer_words=50, max_context_words=None):
    """The SQuAD articles (`{"title", "paragraphs"}`) of Python `source` code (a string), as the tasks make them.

    Example:
    >>> source = '''
    ... def scale(x, factor=2.0):
    ...     \"\"\"Scales a value.
    ...
    ...     Args:
    ...         x: The value to scale. Any float.
    ...         factor (float): How much to multiply it by.
    ...     \"\"\"
    ... '''
    >>> [article] = qa_source(source)
    >>> context = article["paragraphs"][0]["context"]
    >>> [(qa["question"], qa["answers"][0]["text"]) for qa in article["paragraphs"][0]["qas"]]
    [('How is the x parameter of scale described?', 'The value to scale'),
     ('What is the factor argument of scale for?', 'How much to multiply it by')]
    >>> answer = article["paragraphs"][0]["qas"][0]["answers"][0]
    >>> context[answer["answer_start"]:answer["answer_start"] + len(answer["text"])] == answer["text"]
    True
    """
    articles = []
    for unit in _units(ast.parse(source), "<source>", module):
        article = _qa_unit(unit, max_answer_words, max_context_words)
        if article:
            articles.append(article)
    return articles


def _squad(articles):
    return {"version": "tfptm-docstring-qa", "data": articles}


def _questions_of(article):
    return sum(len(paragraph["qas"]) for paragraph in article["paragraphs"])


def _questions(articles):
    return sum(_questions_of(article) for article in articles)


def qa_task(name="libraries", seed=0, train_size=1500, validation_size=200, test_size=500, packages=None,
            max_questions_per_context=4, max_answer_words=50, max_context_words=600):
    """Builds the question answering task `name` (see the module doc) as a `QATask` of SQuAD dicts, the same for the
    same seed and versions.

    Sizes count questions (`None`: all); a context keeps at most
    `max_questions_per_context` of its questions (a seeded draw), and
    docstrings over `max_context_words` words are left out. `packages`
    (importable names) replaces the packages of `name`.

    Example:
    >>> task = qa_task("absl", packages=["absl"], train_size=10, validation_size=2, test_size=2)  # with TensorFlow
    >>> task.train["version"], sum(len(p["qas"]) for a in task.train["data"] for p in a["paragraphs"])
    ('tfptm-docstring-qa', 10)
    """
    _check_sizes(train_size=train_size, validation_size=validation_size, test_size=test_size)
    if max_questions_per_context < 1:
        raise TfptmError(f"qa_task: max_questions_per_context={max_questions_per_context}; expected at least 1")
    packages = _packages_of(name, packages)
    rng = np.random.default_rng(seed)
    by_file, versions = _package_units(packages)
    articles, seen, duplicates = {}, set(), 0
    for file, units in by_file.items():
        articles[file] = []
        for unit in units:
            article = _qa_unit(unit, max_answer_words, max_context_words)
            if article is None:
                continue
            if unit.docstring in seen:
                duplicates += 1
                continue
            seen.add(unit.docstring)
            paragraph = article["paragraphs"][0]
            if len(paragraph["qas"]) > max_questions_per_context:
                keep = sorted(rng.permutation(len(paragraph["qas"]))[:max_questions_per_context].tolist())
                paragraph["qas"] = [paragraph["qas"][i] for i in keep]
            articles[file].append(article)
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    dealt = _deal_files({file: _questions(found) for file, found in articles.items()}, sizes, rng)
    splits, files = {}, {}
    for split, size in sizes.items():
        files[split] = sorted(file for file, to in dealt.items() if to == split)
        chosen, count = [], 0
        for article in _take([articles[file] for file in files[split]], size, rng, count=_questions_of):
            qas = article["paragraphs"][0]["qas"]
            if size is not None and count + len(qas) > size:  # the last ones drawn: cut to the size
                if count >= size:
                    continue
                article = {"title": article["title"],
                           "paragraphs": [{"context": article["paragraphs"][0]["context"], "qas": qas[:size - count]}]}
            chosen.append(article)
            count += _questions_of(article)
        splits[split] = _squad(chosen)
    _check_not_empty("qa_task", name, sizes, {split: d["data"] for split, d in splits.items()}, "question")
    info = {"task": name, "packages": packages, "versions": versions, "seed": seed, "rule": QA_RULE,
            "templates": list(QUESTION_TEMPLATES), "max_questions_per_context": max_questions_per_context,
            "max_answer_words": max_answer_words, "max_context_words": max_context_words,
            "sizes": {split: {"contexts": len(d["data"]), "questions": _questions(d["data"])}
                      for split, d in splits.items()},
            "duplicates": duplicates, "files": files}
    return QATask(name, splits["train"], splits["validation"], splits["test"], info)
