import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tsserve_shim.bridge.framing import Invalid, LineReader, Message, Oversize, encode_message

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=40)
json_values = st.dictionaries(st.text(max_size=6), scalars | st.lists(scalars, max_size=3), max_size=4)


def values(frames):
    return [f.value for f in frames if isinstance(f, Message)]


def test_joins_a_message_split_across_chunks():
    reader = LineReader()
    assert reader.push(b'{"a":') == []
    assert values(reader.push(b"1}\n")) == [{"a": 1}]


def test_reads_every_message_of_a_merged_chunk():
    assert values(LineReader().push(b'{"a":1}\n{"b":2}\r\n{"c":3}\n')) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_decodes_utf8_split_byte_by_byte():
    data = encode_message({"t": "héllo ✓ 😀"})
    reader = LineReader()
    frames = [f for i in range(len(data)) for f in reader.push(data[i : i + 1])]
    assert values(frames) == [{"t": "héllo ✓ 😀"}]


def test_reports_noise_and_keeps_reading():
    frames = LineReader().push(b'printed by a dependency\n{"ok":true}\n')
    assert isinstance(frames[0], Invalid) and frames[0].line == "printed by a dependency"
    assert values(frames) == [{"ok": True}]


def test_refuses_an_oversize_message_and_clears_the_buffer():
    reader = LineReader(max_bytes=64)
    big = orjson.dumps({"x": "y" * 200})
    frames = reader.push(big[:100]) + reader.push(big[100:] + b'\n{"n":1}\n')
    assert isinstance(frames[0], Oversize)
    assert reader.pending_bytes == 0
    assert values(frames) == [{"n": 1}]


@settings(max_examples=2_000, deadline=None)
@given(st.lists(json_values, max_size=6), st.lists(st.integers(min_value=0), max_size=10))
def test_recovers_messages_however_the_bytes_are_cut(messages, cuts):
    data = b"".join(encode_message(m) for m in messages)
    points = sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]
    reader = LineReader()
    frames, last = [], 0
    for point in points:
        frames += reader.push(data[last:point])
        last = point
    assert values(frames) == messages


@settings(max_examples=2_000, deadline=None)
@given(st.binary(max_size=300))
def test_never_crashes_on_arbitrary_bytes(data):
    reader = LineReader(max_bytes=128)
    for frame in reader.push(data) + reader.push(b"\n"):
        assert isinstance(frame, (Message, Invalid, Oversize))
