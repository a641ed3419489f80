"""Property tests: any recipe input gives a `Recipe` or a clean `TfptmError`, never another exception."""

import dataclasses

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfptm.errors import TfptmError
from tfptm.recipes import bundled_names, bundled_path, dump_recipe, parse_recipe, validate
from tfptm.recipes import schema

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _names(cls):
    return [f.name for f in dataclasses.fields(cls)]


FIELD_NAMES = sorted({name for cls in (schema.Recipe, schema.Data, schema.Backbone, schema.Head, schema.Finetune,
                                       schema.Optimizer, schema.Distribute, schema.Pretrain, schema.Distill,
                                       schema.Export) for name in _names(cls)})
CHOICES = sorted(set(schema.DATA_SOURCES + schema.TASKS + schema.POOLINGS + schema.STRATEGIES + schema.OPTIMIZERS
                     + schema.QUANTIZATIONS + schema.PRETRAIN_OBJECTIVES + schema.REPRESENTATIVE))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(CHOICES), st.text(max_size=12), st.sampled_from(["1e-4", "ten", "", "[1, 2]", ".inf"]),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.integers(-3, 3), st.none(), st.booleans())
values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12
)
sections = st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=6)
recipes = st.dictionaries(
    st.one_of(st.sampled_from(_names(schema.Recipe)), keys), st.one_of(sections, values), max_size=8
)


def _outcome(make):
    try:
        recipe = make()
    except TfptmError as error:
        assert str(error) and "\n" not in str(error)
        return None
    assert isinstance(recipe, schema.Recipe)
    assert parse_recipe(dump_recipe(recipe)) == recipe  # anything accepted is saved and read back exactly
    return recipe


@SETTINGS
@given(recipes)
def test_any_dict_gives_a_recipe_or_a_clean_error(raw):
    _outcome(lambda: validate(raw, source="fuzz.yaml"))


@SETTINGS
@given(recipes.map(lambda raw: {**raw, "backbone": {"name": "vgg_cnn", **(raw.get("backbone") if isinstance(raw.get("backbone"), dict) else {})}}))
def test_near_valid_dicts_give_a_recipe_or_a_clean_error(raw):
    _outcome(lambda: validate(raw, source="fuzz.yaml"))


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_gives_a_recipe_or_a_clean_error(text):
    _outcome(lambda: parse_recipe(text, source="fuzz.yaml"))


@SETTINGS
@given(recipes)
def test_any_yaml_document_gives_a_recipe_or_a_clean_error(raw):
    try:
        text = yaml.safe_dump(raw)
    except yaml.YAMLError:
        return
    _outcome(lambda: parse_recipe(text, source="fuzz.yaml"))


set_strings = st.one_of(
    st.text(max_size=30),
    st.builds(lambda path, value: f"{'.'.join(path)}={value}",
              st.lists(st.sampled_from(FIELD_NAMES + ["args", "x"]), min_size=1, max_size=4),
              st.one_of(st.text(max_size=10), st.sampled_from(["3", "null", "[1, 2]", "{a: 1}", "true", "1e-4"]))),
)


@SETTINGS
@given(st.lists(set_strings, max_size=4))
def test_any_set_overrides_give_a_recipe_or_a_clean_error(sets):
    _outcome(lambda: parse_recipe("backbone: {name: vgg_cnn}", source="fuzz.yaml", sets=sets))


def test_self_referencing_yaml_is_a_clean_error():
    _outcome(lambda: parse_recipe("backbone: &a {name: vgg_cnn, args: {x: *a}}", source="fuzz.yaml"))
    _outcome(lambda: parse_recipe("backbone: {name: vgg_cnn, args: {x: &b [*b]}}", source="fuzz.yaml"))


def _field_paths(cls, prefix=()):
    for f in dataclasses.fields(cls):
        if f.metadata["section"] is not None:
            yield from _field_paths(f.metadata["section"], prefix + (f.name,))
        else:
            yield prefix + (f.name,)


FIELD_PATHS = sorted(_field_paths(schema.Recipe))


@SETTINGS
@given(st.sampled_from(bundled_names()), st.lists(st.tuples(st.sampled_from(FIELD_PATHS), values), min_size=1, max_size=3))
def test_bundled_recipes_with_random_fields_give_a_recipe_or_a_clean_error(name, changes):
    raw = yaml.safe_load(bundled_path(name).read_text())
    for path, value in changes:
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    _outcome(lambda: validate(raw, source=f"{name}.yaml"))
