"""Property-based tests (Hypothesis) of the parsers of user input: NB201 arch strings and op
codes, NB101 specs, ``--archs`` selections and ``--train-epochs``. Every input either parses to
a valid value or raises the one-line error type (never another exception); valid values
round-trip through their spelling."""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntknas.errors import InvalidArchError, NtknasError
from ntknas.inputs import validation
from ntknas.inputs.selection import parse_positions, select_positions
from ntknas.spaces import get_space
from ntknas.spaces.nb101 import INPUT, MAX_VERTICES, NB101_OPS, OUTPUT, NB101Spec
from ntknas.spaces.nb201 import NB201_OPS, NB201Arch, parse_arch

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(error: Exception) -> None:
    text = str(error)
    assert text and "\n" not in text, text


# ---------------------------------------------------------------------------------- NB201

ARCH_ALPHABET = "|+~0123456789_ " + "".join(sorted(set("".join(NB201_OPS))))
arch_texts = st.one_of(
    st.text(),
    st.text(alphabet=ARCH_ALPHABET, max_size=120),
    st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6).map(lambda ops: NB201Arch(tuple(ops)).to_string()),
    # a valid string with one character changed, dropped or doubled
    st.tuples(
        st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6), st.integers(0, 200), st.sampled_from(ARCH_ALPHABET),
        st.sampled_from(["replace", "drop", "insert"]),
    ).map(lambda t: _mutate(NB201Arch(tuple(t[0])).to_string(), t[1], t[2], t[3])),
)


def _mutate(text: str, position: int, char: str, how: str) -> str:
    i = position % len(text)
    if how == "replace":
        return text[:i] + char + text[i + 1:]
    if how == "drop":
        return text[:i] + text[i + 1:]
    return text[:i] + char + text[i:]


@FAST
@given(arch_texts)
def test_nb201_arch_strings_parse_or_refuse_in_one_line(text):
    try:
        arch = parse_arch(text)
    except InvalidArchError as error:
        _one_line(error)
        return
    assert isinstance(arch, NB201Arch) and all(op in NB201_OPS for op in arch.ops)
    assert parse_arch(arch.to_string()) == arch
    assert parse_arch(arch.op_codes) == arch


op_code_texts = st.one_of(
    st.text(alphabet=string.digits, max_size=10),
    st.text(alphabet=string.digits + " \t-+x٣", max_size=8),
    st.lists(st.integers(0, 4), min_size=6, max_size=6).map(lambda c: "".join(map(str, c))),
)


@FAST
@given(op_code_texts)
def test_nb201_op_codes_parse_or_refuse_in_one_line(text):
    try:
        arch = parse_arch(text)
    except InvalidArchError as error:
        _one_line(error)
        return
    assert arch.op_codes == text.strip() or parse_arch(arch.op_codes) == arch
    assert parse_arch(arch.op_codes) == arch and parse_arch(arch.to_string()) == arch


# ---------------------------------------------------------------------------------- NB101

NB101_NAMES = [INPUT, OUTPUT, *NB101_OPS, "conv5x5", ""]


@st.composite
def nb101_specs(draw):
    """JSON text of specs: mostly well-formed shapes with random edges and ops, some garbage."""
    n = draw(st.integers(0, MAX_VERTICES + 1))
    upper = draw(st.booleans())
    matrix = [[int(draw(st.booleans())) if (j > i or not upper) else 0 for j in range(n)] for i in range(n)]
    ops = draw(st.one_of(
        st.lists(st.sampled_from(NB101_NAMES), min_size=n, max_size=n),
        st.builds(lambda mid: [INPUT, *mid, OUTPUT], st.lists(st.sampled_from(NB101_OPS), min_size=max(n - 2, 0), max_size=max(n - 2, 0))),
        st.lists(st.one_of(st.integers(), st.none(), st.text(max_size=5)), max_size=n + 1),
    ))
    form = draw(st.sampled_from(["dict", "pair", "garbage"]))
    if form == "dict":
        return json.dumps({"adjacency": matrix, "ops": ops})
    if form == "pair":
        return json.dumps([matrix, ops])
    return draw(st.one_of(st.text(max_size=40), st.just("{}"), st.just("[1]"), st.just('{"adjacency": 3, "ops": 4}'),
                          st.just("[" * 100_000 + "]" * 100_000), st.just('[[[0, 1e400], [0, 0]], ["input", "output"]]'),
                          st.just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")))


@FAST
@given(nb101_specs())
def test_nb101_specs_parse_or_refuse_in_one_line(text):
    space = get_space("nb101")
    try:
        spec = space.parse(text)
    except InvalidArchError as error:
        _one_line(error)
        return
    assert isinstance(spec, NB101Spec)
    again = space.parse(json.dumps({"adjacency": [list(r) for r in spec.adjacency], "ops": list(spec.ops)}))
    assert again == spec and again.hash == spec.hash and len(spec.hash) == 32


# ---------------------------------------------------------------------------------- --archs

ARCHS_ALPHABET = "0123456789:, -all"
archs_texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=ARCHS_ALPHABET, max_size=30),
    st.lists(st.integers(-3, 60), min_size=1, max_size=6).map(lambda xs: ",".join(map(str, xs))),
    st.tuples(st.integers(-2, 60), st.integers(-2, 60)).map(lambda t: f"{t[0]}:{t[1]}"),
)


@FAST
@given(archs_texts, st.integers(0, 50))
def test_archs_selections_parse_or_refuse_in_one_line(text, total):
    try:
        positions = select_positions(total, text, None, 0)
    except InvalidArchError as error:
        _one_line(error)
        return
    assert positions, "a selection is never empty"
    assert all(0 <= p < total for p in positions) and len(set(positions)) == len(positions)
    assert parse_positions(",".join(map(str, positions)), total) == positions


def test_empty_archs_selection_is_refused_not_all():
    for text in ("", "  ", ","):
        try:
            select_positions(100, text, None, 0)
        except InvalidArchError as error:
            assert str(error).startswith("archs")
        else:
            raise AssertionError(f"--archs {text!r} was accepted")
    assert select_positions(5, None, None, 0) == [0, 1, 2, 3, 4]
    assert select_positions(5, "all", None, 0) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------- --train-epochs

epochs_texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="0123456789,- +._e", max_size=20),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=5).map(lambda xs: ",".join(map(str, xs))),
)


@FAST
@given(epochs_texts)
def test_train_epochs_parse_or_refuse_in_one_line(text):
    try:
        epochs = validation.epoch_list(text)
    except NtknasError as error:
        _one_line(error)
        return
    assert epochs and all(isinstance(e, int) and e >= 0 for e in epochs)
    assert list(epochs) == sorted(set(epochs))
    assert validation.epoch_list(",".join(map(str, epochs))) == epochs


@FAST
@given(st.one_of(st.text(max_size=25), st.integers(), st.floats(), st.booleans()))
def test_number_checks_accept_or_refuse_in_one_line(value):
    for check in (validation.positive_int, validation.nonnegative_int, validation.seed,
                  validation.nonnegative_seconds, validation.positive_seconds):
        try:
            result = check(value)
        except NtknasError as error:
            _one_line(error)
            continue
        assert check(str(result)) == result


track_archs_texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789:, |+~", max_size=30),
    st.lists(st.one_of(st.integers(-2, 15630).map(str), op_code_texts, arch_texts), min_size=1, max_size=4).map(",".join),
)


@FAST
@given(track_archs_texts)
def test_track_archs_parse_or_refuse_in_one_line(text):
    from ntknas.runs.track import parse_arch_list

    try:
        archs = parse_arch_list(text, "nb201")
    except InvalidArchError as error:
        _one_line(error)
        return
    assert archs and all(isinstance(a, NB201Arch) for a in archs)
    assert parse_arch_list(",".join(a.op_codes for a in archs), "nb201") == archs


@FAST
@given(arch_texts)
def test_canonical_arch_strings_never_raise(text):
    from ntknas.spaces.nb201 import canonical_arch_string

    canonical = canonical_arch_string(text)
    assert canonical_arch_string(canonical) == canonical
