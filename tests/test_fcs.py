"""FCS reading and writing: real files equal FlowKit's reading; vendor quirks; bad files."""

from __future__ import annotations

from pathlib import Path

import flowio
import numpy as np
import pytest

from immuno.cytometry.io.fcs import (
    format_spillover,
    parse_spillover,
    read_fcs,
    read_fcs_header,
    write_fcs,
)
from immuno.errors import UserError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
REAL_FILES = [REAL / "cytometry" / "flowkit_gate_ref" / "data1.fcs",
              REAL / "chemokines" / "legendplex" / "K2-C07-A7.fcs"]


def _build_fcs(path: Path, text: dict[str, str], data: bytes, version: str = "3.0",
               header_data: tuple[int, int] | None = None, delim: str = "/") -> Path:
    """Assemble an FCS file byte by byte; data offsets in TEXT are filled in."""
    text = dict(text)
    body = ""
    for _ in range(3):  # offsets change TEXT length; iterate to a fixed point
        body = delim + "".join(f"{k}{delim}{v}{delim}" for k, v in text.items())
        start = 256 + len(body.encode())
        end = start + len(data) - 1
        if "$BEGINDATA" in text:
            text["$BEGINDATA"], text["$ENDDATA"] = str(start), str(end)
    hd = header_data if header_data is not None else (start, end)
    head = f"FCS{version}    " + "".join(f"{v:>8d}" for v in (256, 256 + len(body.encode()) - 1, *hd, 0, 0))
    path.write_bytes(head.encode().ljust(256) + body.encode() + data)
    return path


def _layout(n_par: int, n_ev: int, datatype: str, byteord: str, bits: list[int], ranges: list[int]) -> dict[str, str]:
    kw = {"$BYTEORD": byteord, "$DATATYPE": datatype, "$MODE": "L", "$PAR": str(n_par),
          "$TOT": str(n_ev), "$NEXTDATA": "0"}
    for i in range(1, n_par + 1):
        kw |= {f"$P{i}N": f"ch{i}", f"$P{i}B": str(bits[i - 1]), f"$P{i}E": "0,0",
               f"$P{i}R": str(ranges[i - 1])}
    return kw


def test_write_then_read_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    events = rng.normal(1000, 500, (5000, 3)).astype(np.float32)
    spill = format_spillover(["B-A", "C-A"], np.array([[1.0, 0.125], [0.03, 1.0]]))
    path = write_fcs(tmp_path / "x.fcs", events, ["FSC-A", "B-A", "C-A"], [None, "CD3", "IFN/g"],
                     keywords={"$SPILLOVER": spill, "$COM": "a/b//c", "$TIMESTEP": "0.01"})
    fcs = read_fcs(path)
    assert fcs.version == "3.1"
    assert fcs.channels == ["FSC-A", "B-A", "C-A"]
    assert fcs.markers == [None, "CD3", "IFN/g"]
    assert fcs.keywords["$COM"] == "a/b//c"
    assert fcs.events.dtype == np.float32 and fcs.events.flags.c_contiguous
    np.testing.assert_array_equal(fcs.events, events)
    channels, matrix = parse_spillover(fcs.keywords["$SPILLOVER"])
    assert channels == ["B-A", "C-A"] and matrix[0, 1] == 0.125 and matrix[1, 0] == 0.03
    np.testing.assert_array_equal(fcs.ranges, [262144.0] * 3)
    # FlowIO, an independent reader, sees the same file
    other = flowio.FlowData(str(path))
    np.testing.assert_array_equal(np.reshape(other.events, (-1, 3)), events)
    head = read_fcs_header(path)
    assert head.events is None and head.n_events == 5000 and head.channels == fcs.channels


@pytest.mark.real
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_files_equal_flowkit(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real test files absent ({path})")
    import flowkit

    sample = flowkit.Sample(str(path))
    ours = read_fcs(path, dtype=np.float64)
    assert ours.channels == list(sample.pnn_labels)
    assert [m or "" for m in ours.markers] == list(sample.pns_labels)
    np.testing.assert_array_equal(ours.events, sample.get_events(source="raw"))
    raw = flowio.FlowData(str(path))
    np.testing.assert_array_equal(read_fcs(path, dtype=np.float64, preprocess=False).events,
                                  raw.as_array(preprocess=False))
    np.testing.assert_allclose(read_fcs(path).events, ours.events, rtol=1e-6)


@pytest.mark.real
def test_real_fcs2_big_endian_log_amplified() -> None:
    path = REAL_FILES[0]
    if not path.exists():
        pytest.skip("real test files absent")
    fcs = read_fcs(path, dtype=np.float64, preprocess=False)
    assert fcs.version == "2.0" and fcs.keywords["$BYTEORD"] == "4,3,2,1"
    assert fcs.events.shape == (13367, 8)
    assert fcs.events.max() <= 1023  # 16-bit words masked to $PnR = 1024
    # $P3E = 4,0: channel value v decodes to 10**(4 v / 1024)
    decoded = read_fcs(path, dtype=np.float64)
    np.testing.assert_allclose(decoded.events[:, 2], 10 ** (4 * fcs.events[:, 2] / 1024))
    # $P1G = 3.67 gain is divided out of the linear FSC-H
    np.testing.assert_allclose(decoded.events[:, 0], fcs.events[:, 0] / 3.67)


def test_big_endian_integers_are_masked_to_range(tmp_path: Path) -> None:
    values = np.array([[5, 1023 + 1024], [700, 3]], dtype=">u2")  # second value has a high bit set
    kw = _layout(2, 2, "I", "4,3,2,1", [16, 16], [1024, 1024])
    path = _build_fcs(tmp_path / "i.fcs", kw, values.tobytes(), version="2.0")
    fcs = read_fcs(path, preprocess=False)
    np.testing.assert_array_equal(fcs.events, [[5, 1023], [700, 3]])


def test_mixed_integer_widths(tmp_path: Path) -> None:
    rec = np.array([(1, 70000, 9), (2, 5, 255)], dtype=[("a", "<u2"), ("b", "<u4"), ("c", "u1")])
    kw = _layout(3, 2, "I", "1,2,3,4", [16, 32, 8], [65536, 262144, 256])
    path = _build_fcs(tmp_path / "m.fcs", kw | {"$BEGINDATA": "0", "$ENDDATA": "0"}, rec.tobytes())
    fcs = read_fcs(path)
    np.testing.assert_array_equal(fcs.events, [[1, 70000, 9], [2, 5, 255]])


def test_double_data_with_zero_header_offsets(tmp_path: Path) -> None:
    values = np.arange(12, dtype="<f8").reshape(4, 3) / 7
    kw = _layout(3, 4, "D", "1,2,3,4", [64] * 3, [1024] * 3) | {"$BEGINDATA": "0", "$ENDDATA": "0"}
    # a file over 99,999,999 bytes writes 0 in the HEADER and the offsets in TEXT only
    path = _build_fcs(tmp_path / "d.fcs", kw, values.tobytes(), version="3.1", header_data=(0, 0))
    fcs = read_fcs(path, dtype=np.float64)
    np.testing.assert_array_equal(fcs.events, values)


def test_data_end_off_by_one(tmp_path: Path) -> None:
    values = np.arange(20, dtype=">f4").reshape(5, 4)
    kw = _layout(4, 5, "F", "4,3,2,1", [32] * 4, [262144] * 4) | {"$BEGINDATA": "0", "$ENDDATA": "0"}
    path = _build_fcs(tmp_path / "o.fcs", kw, values.tobytes() + b"\x00")  # one byte too many
    fcs = read_fcs(path)
    np.testing.assert_array_equal(fcs.events, values.astype(np.float32))
    with pytest.warns(UserWarning, match="incorrect data offset"):
        reference = flowio.FlowData(str(path), ignore_offset_error=True)
    np.testing.assert_array_equal(reference.as_array(preprocess=False), fcs.events)


def test_float_width_contradicting_pnb_is_refused(tmp_path: Path) -> None:
    values = np.arange(12, dtype="<f4").reshape(4, 3)
    kw = _layout(3, 4, "F", "1,2,3,4", [32, 16, 32], [1024] * 3) | {"$BEGINDATA": "0", "$ENDDATA": "0"}
    path = _build_fcs(tmp_path / "w.fcs", kw, values.tobytes())
    with pytest.raises(UserError, match=r"w\.fcs.*\$P2B=16 but \$DATATYPE F stores 32-bit floats"):
        read_fcs(path)


def test_floats_in_the_wrong_byte_order_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(6, 2, size=(500, 3)).astype("<f4")
    kw = _layout(3, 500, "F", "1,2,3,4", [32] * 3, [262144] * 3) | {"$BEGINDATA": "0", "$ENDDATA": "0"}
    path = _build_fcs(tmp_path / "good.fcs", kw, values.tobytes())
    np.testing.assert_array_equal(read_fcs(path).events, values)
    # the same bytes declared big-endian: garbage that must not reach a gate
    kw["$BYTEORD"] = "4,3,2,1"
    path = _build_fcs(tmp_path / "swapped.fcs", kw, values.tobytes())
    with pytest.raises(UserError, match=r"swapped\.fcs.*not measurements.*byte order \(\$BYTEORD 4,3,2,1\)"):
        read_fcs(path)


def test_timestep_scales_time_like_flowkit(tmp_path: Path) -> None:
    events = np.array([[100.0, 10.0], [200.0, 20.0]], dtype=np.float32)
    path = write_fcs(tmp_path / "t.fcs", events, ["FSC-A", "Time"], [None, None],
                     keywords={"$TIMESTEP": "0.01"})
    np.testing.assert_allclose(read_fcs(path).events[:, 1], [0.1, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(read_fcs(path, preprocess=False).events[:, 1], [10.0, 20.0])


def test_doubled_delimiter_is_a_literal(tmp_path: Path) -> None:
    kw = _layout(1, 1, "F", "1,2,3,4", [32], [1024]) | {"$COM": "a\\\\b", "NEXT": "x"}
    path = _build_fcs(tmp_path / "d.fcs", kw, np.zeros(1, "<f4").tobytes(), delim="\\")
    head = read_fcs_header(path)
    assert head.keywords["$COM"] == "a\\b" and head.keywords["NEXT"] == "x"


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"hello, this is a text file and not a cytometry export at all ...." * 2, "not an FCS file"),
])
def test_bad_files_name_the_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.fcs"
    path.write_bytes(content)
    for reader in (read_fcs, read_fcs_header):
        with pytest.raises(UserError) as err:
            reader(path)
        assert str(path) in err.value.problems[0].where and expected in err.value.problems[0].what


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    events = np.ones((1000, 4), np.float32)
    path = write_fcs(tmp_path / "full.fcs", events, ["a", "b", "c", "d"], [None] * 4)
    cut = tmp_path / "cut.fcs"
    cut.write_bytes(path.read_bytes()[:-4000])
    for reader in (read_fcs, read_fcs_header):  # the header-only check sees it too
        with pytest.raises(UserError) as err:
            reader(cut)
        assert "truncated" in err.value.problems[0].what and str(cut) in err.value.problems[0].where
    stub = tmp_path / "stub.fcs"
    stub.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="truncated"):
        read_fcs_header(stub)


def test_missing_file() -> None:
    with pytest.raises(UserError, match="cannot read"):
        read_fcs("/nonexistent/x.fcs")


def test_parse_spillover_partial_and_bad() -> None:
    channels, m = parse_spillover("2,FL1-A,FL2-A,1,0.2,0.05,1")
    assert channels == ["FL1-A", "FL2-A"]
    np.testing.assert_array_equal(m, [[1, 0.2], [0.05, 1]])
    with pytest.raises(UserError, match="needs 7"):
        parse_spillover("2,FL1-A,FL2-A,1,0.2,0.05", where="x.fcs $SPILLOVER")
    with pytest.raises(UserError, match="numbers"):
        parse_spillover("1,FL1-A,one")
    with pytest.raises(UserError, match="number of channels"):
        parse_spillover("FL1-A,1")
