"""The hunting views, column by column: the one place their names, types and meanings live.

docs/hunting.md is generated from this (`python -m osptrack.hunt.schema`), the run-folder parser
builds its Arrow tables with these types, and the dataset adapter selects the same columns, so
the views of every kind of input union without surprises.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str


_S = pa.string()
_I = pa.int64()
_F = pa.float64()
_B = pa.bool_()
_LS = pa.list_(pa.string())

_KEY = [
    Column("run_id", _S, "the run: its folder's absolute path, or `<dataset.parquet path>#<Row>`"),
    Column("phase", _S, "`install`, `import` or `execute`"),
]

TABLES: dict[str, list[Column]] = {
    "runs": [
        Column("run_id", _S, "the run: its folder's absolute path, or `<dataset.parquet path>#<Row>`"),
        Column("source", _S, "`run` (a run folder, alone or in a batch output) or `dataset` (a dataset row)"),
        Column("path", _S, "the run folder; for a dataset row, its `Source_Path`"),
        Column("batch", _S, "the batch output folder holding the run (it has `manifest.csv`), else null"),
        Column("ecosystem", _S, "`pypi`, `npm`, `rubygems`, `packagist`, `crates.io`, `nuget`"),
        Column("name", _S, "package name as the run recorded it"),
        Column("version", _S, "package version"),
        Column("archive", _S, "the archive analysed (run.json `package.archive`)"),
        Column("sha256", _S, "the archive's SHA-256 (run.json `package.sha256`); null for dataset rows"),
        Column(
            "verdict",
            _S,
            "run.json `verdict.level` (`benign`, `suspicious`, `malicious`); null before verdicts",
        ),
        Column("score", _F, "run.json `verdict.score`; null when absent"),
        Column("findings_n", _I, "findings in the verdict (0 when there is no verdict)"),
        Column("install_status", _S, "package-analysis `Status` of install; null if the phase did not run"),
        Column("import_status", _S, "package-analysis `Status` of import"),
        Column("execute_status", _S, "package-analysis `Status` of execute"),
        Column("trace_valid", _B, "run.json `trace.valid` (dataset: `Trace_Valid`)"),
        Column("timed_out", _B, "any phase timed out"),
        Column("network", _S, "run.json `sandbox.network` (`offline`, `online`); null for dataset rows"),
        Column("created", _F, "result.json `CreatedTimestamp`, epoch seconds"),
        Column("total_s", _F, "run.json `timings.total_s`"),
        Column("honeytokens_n", _I, "honeytokens planted (null for dataset rows)"),
        Column("exfiltration_n", _I, "run.json `exfiltration` records: honeytokens proven sent out"),
        Column("bait_reads_n", _I, "run.json `bait_reads` records"),
        Column("label", _I, "dataset `Label` (1 malicious, 0 benign); null for run folders"),
        Column("sub_label", _S, "dataset `Sub_Label`; null for run folders"),
    ],
    "files": [
        *_KEY,
        Column("path", _S, "the file, as result.json `Files` records it"),
        Column("read", _B, "`Read`"),
        Column("write", _B, "`Write`"),
        Column("delete", _B, "`Delete`"),
        Column("template", _S, "templated path (`<SITE>`, `<HOME>`, ...): dataset rows only, else null"),
        Column("noise", _B, "in the ecosystem's baseline: dataset rows only, else null"),
    ],
    "sockets": [
        *_KEY,
        Column("address", _S, "`Address` (IP)"),
        Column("port", _I, "`Port`"),
        Column("hostnames", _LS, "`Hostnames`"),
        Column("hostname", _S, "the first of `hostnames`, or null"),
        Column("noise", _B, "in the baseline: dataset rows only"),
    ],
    "commands": [
        *_KEY,
        Column("command", _LS, "argv (`Command`)"),
        Column("command_line", _S, "argv joined with spaces, for LIKE and regexp_matches"),
        Column("environment", _LS, "`Environment` (`K=V`)"),
        Column("noise", _B, "in the baseline: dataset rows only"),
    ],
    "dns": [
        *_KEY,
        Column("class", _S, "`Class` (`IN`)"),
        Column("hostname", _S, "one queried name (one row per name)"),
        Column("types", _LS, "query types (`A`, `AAAA`, ...)"),
        Column("noise", _B, "in the baseline: dataset rows only"),
    ],
    "events": [
        Column("run_id", _S, "the run folder"),
        Column("t", _F, "epoch seconds"),
        Column("phase", _S, "phase"),
        Column("pid", _I, "host pid"),
        Column("ppid", _I, "the pid that cloned it"),
        Column("exe", _S, "the pid's last exec'd image"),
        Column("comm", _S, "basename of exe"),
        Column("syscall", _S, "the system call"),
        Column("kind", _S, "`file`, `process`, `network`"),
        Column("op", _S, "`read`, `write`, `exec`, `connect`, ... (docs/formats.md)"),
        Column("path", _S, "file path, or the new program of an exec"),
        Column("path2", _S, "rename/link destination"),
        Column("ret", _I, "return value"),
        Column("errno", _S, "`ENOENT`, ... or null on success"),
        Column("argv", _LS, "exec argv"),
        Column("family", _S, "`AF_INET`, `AF_INET6`, `AF_UNIX`"),
        Column("address", _S, "network address"),
        Column("port", _I, "network port"),
        Column("child_pid", _I, "clone's child"),
        Column("exit_code", _I, "exit status"),
        Column("signal", _S, "signal name (op `signal`, or the exit of a killed process)"),
        Column("ftype", _S, "what a non-file open reached (`dir`, `pipe`, `socket`, ...)"),
    ],
    "flows": [
        Column("run_id", _S, "the run folder"),
        Column("t", _F, "epoch seconds"),
        Column("phase", _S, "phase"),
        Column("kind", _S, "`dns`, `tcp`, `udp`, ... (network.jsonl `kind`)"),
        Column("dst", _S, "destination address"),
        Column("dst_port", _I, "destination port"),
        Column(
            "hostname",
            _S,
            "the name behind the flow (fake DNS, SNI, Host, CONNECT target); for `dns`, the query",
        ),
        Column("tls_sni", _S, "TLS server name"),
        Column("http_method", _S, "HTTP method"),
        Column("http_path", _S, "HTTP path"),
        Column("http_host", _S, "HTTP Host header"),
        Column("qtype", _S, "DNS query type (`dns` flows)"),
        Column("answer", _LS, "DNS answers handed out (`dns` flows)"),
        Column("bytes", _I, "bytes the client sent"),
        Column("payload", pa.binary(), "the captured first bytes (decoded from base64), at most 4 KiB"),
        Column("payload_sha256", _S, "SHA-256 of `payload`"),
    ],
    "findings": [
        Column("run_id", _S, "the run folder"),
        Column("level", _S, "the run's verdict level"),
        Column("rule", _S, "rule id"),
        Column("title", _S, "one-line title"),
        Column("severity", _S, "the finding's severity"),
        Column("phase", _S, "phase"),
        Column("source", _S, "who produced it: `rules`, `model`, ... (null in older runs)"),
        Column("honeytoken", _S, "the honeytoken kind involved, if any (the first evidence item naming one)"),
        Column("evidence", _S, "the finding's evidence as JSON text (use `json_extract`)"),
    ],
    "honeytokens": [
        Column("run_id", _S, "the run folder"),
        Column("kind", _S, "`aws_secret_access_key`, `ssh_private_key`, ..."),
        Column("value", _S, "the planted bait value (unique per run)"),
        Column("planted", _LS, "where: files and `env:NAME`"),
        Column("exfiltrated", _B, "run.json `exfiltration` names this kind"),
        Column("read", _B, "run.json `bait_reads` names one of its files"),
    ],
}

# Tables a dataset row can fill; the others are empty for datasets (no events, flows or verdicts).
DATASET_TABLES = ("runs", "files", "sockets", "commands", "dns")


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type) for c in TABLES[table]])


def sql_type(t: pa.DataType) -> str:
    return {
        "string": "VARCHAR",
        "int64": "BIGINT",
        "double": "DOUBLE",
        "bool": "BOOLEAN",
        "list<item: string>": "VARCHAR[]",
        "binary": "BLOB",
    }.get(str(t), str(t))


def markdown() -> str:
    out = []
    for table, cols in TABLES.items():
        out.append(f"### `{table}`\n\n| column | type | meaning |\n|---|---|---|")
        out.extend(f"| `{c.name}` | {sql_type(c.type)} | {c.doc} |" for c in cols)
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
