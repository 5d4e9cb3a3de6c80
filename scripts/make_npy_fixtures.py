#!/usr/bin/python3
"""Writes tests/data/npy/: the .npy files that tests/test_npy.cpp reads (and the npy
fuzz target's seed corpus, fuzz/corpus/npy/, copies of a few of them).

Made with numpy alone (Debian's python3-numpy, np.save and np.lib.format.write_array);
a few headers numpy would not write (keys in another order, double quotes, Python 2's
"5L", an overflowing shape) are written byte by byte. Nothing is random: every value is
a formula of its index, which the C++ test recomputes.

    /usr/bin/python3 scripts/make_npy_fixtures.py

Valid files (the test reads each and compares every value):
  z_*.npy        the (5, 3) matrix z[i, j] = (3 i + j - 7) * 0.375 (exact in float32) as
                 float32/float64, little/big endian, C/Fortran order, version 1.0/2.0/3.0
                 headers, and with a hand-written header
  vec_f4.npy     the 1-D float32 array k * 0.5, k = 0..5
  int_*.npy      the integers of INTS[kind] below, one file per integer type and byte order
  int_i4_fortran.npy  the (2, 3) int32 matrix 10 i + j in Fortran order
  labels*.npy    class labels for z: [2, 0, 1, 1, 0] as int64, uint8 and (5, 1) int32
  probs.npy      probability rows (PROBS below, float64), a zero among them
Bad files: listed in BAD below with what is wrong with each.
"""
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "npy")
CORPUS = os.path.join(HERE, "..", "fuzz", "corpus", "npy")

Z = ((np.arange(15).reshape(5, 3) - 7) * 0.375)  # float64, exact in float32
LABELS = np.array([2, 0, 1, 1, 0])
PROBS = np.array([[0.5, 0.25, 0.25], [0.1, 0.0, 0.9], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.125, 0.625, 0.25]])
INTS = {
    "i1": [-128, -1, 0, 1, 127],
    "u1": [0, 1, 2, 128, 255],
    "i2": [-32768, -1, 0, 1, 32767],
    "u2": [0, 1, 2, 40000, 65535],
    "i4": [-2**31, -1, 0, 1, 2**31 - 1],
    "u4": [0, 1, 2, 3000000000, 2**32 - 1],
    "i8": [-2**63, -1, 0, 1, 2**63 - 1],
    "u8": [0, 1, 2, 2**40, 2**63 - 1],
}


def path(name):
    return os.path.join(OUT, name)


def save(name, a):
    np.save(path(name), a)


def raw(name, header, data=b"", version=1):
    """A .npy file with a header dict written as given, padded as numpy pads it."""
    h = header.encode("latin1")
    prefix = 10 if version == 1 else 12
    pad = (64 - (prefix + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    with open(path(name), "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + size + h + data)


def write_version(name, a, version):
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, a, version=version)


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(path(old))
    z4, z8 = Z.astype("<f4"), Z.astype("<f8")
    save("z_f4.npy", z4)
    save("z_f8.npy", z8)
    save("z_f4_be.npy", Z.astype(">f4"))
    save("z_f8_be.npy", Z.astype(">f8"))
    save("z_f4_fortran.npy", np.asfortranarray(z4))
    save("z_f8_be_fortran.npy", np.asfortranarray(Z.astype(">f8")))
    write_version("z_f4_v2.npy", z4, (2, 0))
    write_version("z_f4_v3.npy", z4, (3, 0))
    # numpy writes 'descr', 'fortran_order', 'shape' in this order, single quotes and a
    # trailing comma; the format allows any Python literal dict.
    raw("z_f4_header_reordered.npy", '{ "shape" : ( 5 ,3 ) ,"fortran_order":False, "descr":"<f4"}', z4.tobytes())
    raw("z_f4_header_py2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (5L, 3L), }", z4.tobytes())
    save("vec_f4.npy", (np.arange(6) * 0.5).astype("<f4"))
    for kind, values in INTS.items():
        save("int_%s.npy" % kind, np.array(values, dtype="<" + kind if kind[1] != "1" else kind))
        if kind[1] != "1":
            save("int_%s_be.npy" % kind, np.array(values, dtype=">" + kind))
    save("int_i4_fortran.npy", np.asfortranarray(np.array([[0, 1, 2], [10, 11, 12]], dtype="<i4")))
    save("labels.npy", LABELS.astype("<i8"))
    save("labels_u1.npy", LABELS.astype("u1"))
    save("labels_column.npy", LABELS.astype(">i4").reshape(5, 1))
    save("probs.npy", PROBS.astype("<f8"))

    # Bad files: name -> what is wrong (the test expects the reader to say so).
    good = open(path("z_f4.npy"), "rb").read()
    with open(path("bad_magic.npy"), "wb") as f:
        f.write(b"NOTNUMPY" + good[8:])
    with open(path("bad_truncated_header.npy"), "wb") as f:
        f.write(good[:40])
    with open(path("bad_truncated_data.npy"), "wb") as f:
        f.write(good[:-4])
    with open(path("bad_two_arrays.npy"), "wb") as f:  # np.save twice into one open file
        np.save(f, z4)
        np.save(f, z4)
    save("bad_object.npy", np.array([{"a": 1}, None], dtype=object))
    save("bad_complex.npy", np.array([[1 + 2j, 3]], dtype="<c8"))
    save("bad_rank3.npy", np.zeros((2, 2, 2), dtype="<f4"))
    save("bad_rank0.npy", np.float32(3.0))
    save("bad_bool.npy", np.array([True, False]))
    save("bad_str.npy", np.array(["ab", "c"]))
    save("bad_structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    save("bad_float16.npy", np.zeros((2, 2), dtype="<f2"))
    save("bad_u8_too_large.npy", np.array([0, 2**64 - 1], dtype="<u8"))
    raw("bad_shape_overflow.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }")
    raw("bad_shape_absurd.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 10), }", z4.tobytes())
    raw("bad_header_missing_key.npy", "{'descr': '<f4', 'shape': (5, 3), }", z4.tobytes())
    raw("bad_header_unknown_key.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), 'x': 1, }",
        z4.tobytes())
    raw("bad_header_syntax.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3}", z4.tobytes())
    # logits files that read but fail validation
    nan = z4.copy()
    nan[1, 2] = np.nan
    save("bad_nan.npy", nan)
    big = z8.copy()
    big[3, 0] = 1e300  # beyond float32: Inf once converted
    save("bad_beyond_float.npy", big)
    not_probs = PROBS.copy()
    not_probs[2] = [0.2, 0.3, 0.4]  # sums to 0.9
    save("bad_probs_sum.npy", not_probs)
    negative = PROBS.copy()
    negative[4] = [-0.125, 0.875, 0.25]  # sums to 1, one value negative
    save("bad_probs_negative.npy", negative)

    os.makedirs(CORPUS, exist_ok=True)
    for name in ["z_f4.npy", "z_f8_be_fortran.npy", "z_f4_v2.npy", "z_f4_header_reordered.npy", "int_i2_be.npy",
                 "labels_column.npy", "bad_object.npy"]:
        shutil.copy(path(name), os.path.join(CORPUS, name))


if __name__ == "__main__":
    main()
