"""bench/carry_parts.sh: a file split into parts that each fit one device call, stashed part by part
(one call each) and joined back byte for byte, its checksum checked; a missing part is refused."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sh(cwd, *args):
    env = dict(os.environ, CARRY_PART_SIZE="1M")  # 60M on the way to the GPU; 1M keeps the test small
    return subprocess.run(["bash", os.path.join(cwd, "bench", "carry_parts.sh"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_split_stash_join_round_trip(tmp_path):
    work = tmp_path / "w"
    (work / "bench").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "bench", "carry_parts.sh"), work / "bench")
    data = os.urandom((2 << 20) + 12345)  # parts of 1, 1 and a bit MiB
    (work / "big.whl").write_bytes(data)
    r = _sh(work, "split", str(work / "big.whl"), ".parts")
    assert r.returncode == 0, r.stderr
    parts = sorted(p for p in os.listdir(work / ".parts") if p.startswith("p"))
    assert parts == ["p1", "p2", "p3"] and max(os.path.getsize(work / ".parts" / p) for p in parts) == 1 << 20
    store = "/tmp/tf_carry/.parts"
    shutil.rmtree(store, ignore_errors=True)
    try:
        for p in parts[:2]:  # one part per call: only that part is present in the call's tree
            one = tmp_path / f"call_{p}"
            (one / ".parts").mkdir(parents=True)
            shutil.copytree(work / "bench", one / "bench")
            shutil.copy(work / ".parts" / p, one / ".parts" / p)
            assert _sh(one, "stash", ".parts").returncode == 0
        r = _sh(work, "join", ".parts", str(tmp_path / "joined"))  # p3 not stashed yet: checksum differs
        assert r.returncode != 0 and "checksum differs" in r.stderr
        shutil.copy(work / ".parts" / "p3", store)
        r = _sh(work, "join", ".parts", str(tmp_path / "joined"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "joined").read_bytes() == data
    finally:
        shutil.rmtree(store, ignore_errors=True)


def test_zsplit_site_round_trip(tmp_path):
    """A wheel unpacked, tarred and zstd-compressed in parts (zsplit), joined and unpacked into the
    site folder (site): the package tree arrives file for file."""
    import pytest
    import zipfile
    if shutil.which("zstd") is None:
        pytest.skip("zstd not installed")
    work = tmp_path / "w"
    (work / "bench").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "bench", "carry_parts.sh"), work / "bench")
    files = {"pkg/__init__.py": b"X = 1\n", "pkg/lib.so": os.urandom(3 << 20), "pkg-1.0.dist-info/METADATA": b"Name: pkg\n"}
    with zipfile.ZipFile(work / "pkg-1.0-py3-none-any.whl", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    r = _sh(work, "zsplit", str(work / "pkg-1.0-py3-none-any.whl"), ".z")
    assert r.returncode == 0, r.stderr
    assert (work / ".z" / "SHA256").read_text().split()[1] == "pkg-1.0-py3-none-any.tar.zst"
    store = "/tmp/tf_carry/.z"
    shutil.rmtree(store, ignore_errors=True)
    try:
        assert _sh(work, "stash", ".z").returncode == 0
        site = tmp_path / "site"
        env = dict(os.environ, CARRY_SITE=str(site))
        r = subprocess.run(["bash", str(work / "bench" / "carry_parts.sh"), "site", ".z"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        for name, data in files.items():
            assert (site / name).read_bytes() == data, name
    finally:
        shutil.rmtree(store, ignore_errors=True)
