"""The package's shape: no import circle anywhere in `tfptm/`, floors that import only downward, one owner per file name.

Imports are read from the source (every `import` statement, function-level
ones included), so a circle hidden inside a function counts.
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import tfptm

PACKAGE = Path(tfptm.__file__).parent


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path, modules):
    """The tfptm modules `path` imports: `from a.b import c` is `a.b.c` when that is a module, else `a.b`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules}


def import_graph():
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def cycles(graph):
    """Every strongly connected group of more than one module (Tarjan), as sorted lists."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_tfptm():
    graph = import_graph()
    assert len(graph) > 80  # every module was read
    assert cycles(graph) == []


def test_lower_floors_do_not_import_jobs_recipes_or_cli():
    upper = ("tfptm.jobs", "tfptm.recipes", "tfptm.cli")
    lower = ("tfptm.data", "tfptm.datasets", "tfptm.backbones", "tfptm.heads", "tfptm.build", "tfptm.tasks",
             "tfptm.training", "tfptm.pretrain", "tfptm.compress", "tfptm.evaluation", "tfptm.export", "tfptm.rundir")
    wrong = sorted((module, target) for module, targets in import_graph().items() if module.startswith(lower)
                   for target in targets if target.startswith(upper))
    assert wrong == []


def test_recipes_import_no_tensorflow():
    code = ("import sys, tfptm.recipes, tfptm.recipes.validate, tfptm.recipes.schema, tfptm.recipes.bundled, "
            "tfptm.recipes.checks, tfptm.rundir; "
            "from tfptm.recipes import load_recipe, bundled_path, bundled_names; "
            "[load_recipe(bundled_path(name)) for name in bundled_names()]; "
            "heavy = [m for m in ('tensorflow', 'keras', 'keras_hub', 'numpy') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_directory_file_names_are_defined_once():
    """Each run-directory file name is defined in tfptm/rundir.py and nowhere else in the package."""
    names = ["summary.json", "model.keras", "recipe.yaml", "history.json", "report.md", "representative.npy",
             "representative.npz"]
    definition = re.compile(r"^\s*[A-Z_]+\s*=\s*\"(%s)\"" % "|".join(re.escape(n) for n in names), re.M)
    found = {}
    for path in PACKAGE.rglob("*.py"):
        for match in definition.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1), []).append(path.relative_to(PACKAGE).as_posix())
    assert found == {name: ["rundir.py"] for name in names}


def test_one_writer_of_summary_json():
    writers = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                     if re.search(r"^def write_summary\b", path.read_text(encoding="utf-8"), re.M))
    assert writers == ["rundir.py"]
    literal = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                     if "SUMMARY_FILE" in path.read_text(encoding="utf-8") and "write_json_atomic(" in path.read_text(encoding="utf-8")
                     and path.name != "rundir.py" and re.search(r"write_json_atomic\([^)]*SUMMARY_FILE", path.read_text(encoding="utf-8")))
    assert literal == []


def test_old_import_paths_still_work_with_a_warning():
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning); import tfptm\n"
            "try:\n    from tfptm.recipes.run import run_recipe\nexcept DeprecationWarning as w:\n    print('warned', w)\n"
            "warnings.simplefilter('ignore')\n"
            "from tfptm.recipes.run import run_recipe; from tfptm.jobs.train import run_recipe as new\n"
            "from tfptm.export.run import export_checked; from tfptm.data.digits import load_digits\n"
            "from tfptm.recipes.models import evaluate; from tfptm.jobs.model import test_metrics\n"
            "assert evaluate is test_metrics\n"
            "print(run_recipe is new, tfptm.recipes.run_recipe is new, tfptm.get_backbone.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("warned tfptm.recipes.run moved to tfptm.jobs.train")
    assert lines[-1] == "True True get_backbone"


def test_recipe_choices_are_the_library_lists():
    """`tfptm.recipes.schema` spells its allowed values out (it imports no TensorFlow); they must stay the owners'."""
    from tfptm import heads
    from tfptm.export import litert
    from tfptm.jobs.fit import STAGES
    from tfptm.jobs.pretrain import PRETRAINERS
    from tfptm.recipes import schema
    from tfptm.training import distribute, optimizers, precision

    assert schema.TASKS == heads.TASKS and schema.POOLINGS == heads.POOLINGS
    from tfptm.tasks import embeddings

    assert tuple(schema.EMBEDDING_POOLINGS.values()) == embeddings.POOLINGS  # head.pooling avg/first for embedders
    assert set(schema.EMBEDDING_POOLINGS) <= set(schema.POOLINGS) and set(schema.EMBEDDING_STRATEGIES) <= set(schema.STRATEGIES)
    assert schema.QUANTIZATIONS == litert.QUANTIZATIONS
    assert schema.DISTRIBUTE == distribute.STRATEGIES
    assert schema.PRECISIONS == tuple(p for p in precision.POLICIES if p is not None)
    assert set(schema.SCHEDULES) == {"constant", *optimizers.DECAYS}
    assert schema.STRATEGIES == tuple(STAGES)
    assert sorted(schema.PRETRAIN_OBJECTIVES) == sorted(PRETRAINERS)
    from tfptm.tasks import TOKEN_TASK_MODULES, spans, tokens

    assert schema.TOKEN_TASKS == tuple(TOKEN_TASK_MODULES) == (tokens.TASK, spans.TASK)  # head.task of per-token heads


def test_loaders_do_not_import_the_demo_data_sets():
    """`tfptm.datasets` (demo data) may use the loaders in `tfptm.data`, never the other way round."""
    wrong = sorted((module, target) for module, targets in import_graph().items()
                   if module == "tfptm.data" or module.startswith("tfptm.data.")
                   for target in targets if target == "tfptm.datasets" or target.startswith("tfptm.datasets."))
    assert wrong == []
