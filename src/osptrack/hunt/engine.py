"""A DuckDB connection whose views (osptrack.hunt.schema) span every input, and the canned hunts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osptrack.errors import BadInput
from osptrack.hunt.cache import cached_segments, check_outside, parse_segment
from osptrack.hunt.schema import DATASET_TABLES, TABLES, sql_type
from osptrack.hunt.sources import Inputs, discover

PHASES = ("install", "import", "execute")


@dataclass(frozen=True)
class HuntOptions:
    cache_dir: Path | None  # None: parse into memory, write nothing
    workers: int = 1


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty(table: str) -> str:
    cols = ", ".join(f"CAST(NULL AS {sql_type(c.type)}) AS {_q(c.name)}" for c in TABLES[table])
    return f"SELECT {cols} WHERE false"


def _q(name: str) -> str:
    return f'"{name}"'


def _dataset_selects(path: Path, table: str) -> list[str]:
    """SELECTs turning one dataset.parquet's rows and nested columns into `table`'s columns."""
    src = f"read_parquet({_lit(str(path))})"
    rid = f'{_lit(str(path) + "#")} || CAST("Row" AS VARCHAR)'
    if table == "runs":
        return [
            f"""SELECT {rid} AS run_id, 'dataset' AS source, Source_Path AS path, NULL AS batch,
                Ecosystem AS ecosystem, Name AS name, Version AS version, Local_Archive AS archive,
                NULL AS sha256, NULL AS verdict, NULL AS score, 0 AS findings_n,
                install_Status AS install_status, import_Status AS import_status,
                execute_Status AS execute_status, Trace_Valid AS trace_valid, Timed_Out AS timed_out,
                NULL AS network, Created_Timestamp AS created, NULL AS total_s, NULL AS honeytokens_n,
                NULL AS exfiltration_n, NULL AS bait_reads_n, CAST(Label AS BIGINT) AS label,
                Sub_Label AS sub_label FROM {src}"""
        ]
    out = []
    for p in PHASES:
        inner = f"SELECT {rid} AS run_id, unnest({_q(p + '_' + {'files': 'Files', 'sockets': 'Sockets', 'commands': 'Commands', 'dns': 'DNS'}[table])}) AS r FROM {src}"
        if table == "files":
            out.append(
                f"""SELECT run_id, '{p}' AS phase, r.Path AS path, r.Read AS read, r.Write AS write,
                    r.Delete AS delete, r.Template AS template, r.Noise AS noise FROM ({inner})"""
            )
        elif table == "sockets":
            out.append(
                f"""SELECT run_id, '{p}' AS phase, r.Address AS address, CAST(r.Port AS BIGINT) AS port,
                    r.Hostnames AS hostnames, r.Hostnames[1] AS hostname, r.Noise AS noise FROM ({inner})"""
            )
        elif table == "commands":
            out.append(
                f"""SELECT run_id, '{p}' AS phase, r.Command AS command,
                    array_to_string(r.Command, ' ') AS command_line, r.Environment AS environment,
                    r.Noise AS noise FROM ({inner})"""
            )
        elif table == "dns":
            out.append(
                f"""SELECT run_id, '{p}' AS phase, cls AS class, q.Hostname AS hostname, q.Types AS types,
                    noise FROM (SELECT run_id, r.Class AS cls, r.Noise AS noise, unnest(r.Queries) AS q
                    FROM ({inner}))"""
            )
    return out


def _check_dataset(con: Any, path: Path) -> None:
    import duckdb

    try:
        names = {
            r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})").fetchall()
        }
    except duckdb.Error as exc:
        raise BadInput(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    need = {"Row", "Ecosystem", "Name", "Version", "Source_Path", *(f"{p}_Files" for p in PHASES)}
    missing = sorted(need - names)
    if missing:
        raise BadInput(
            f"{path}: not a dataset.parquet from `osptrack dataset build` (no {', '.join(missing)})"
        )


def connect(paths: list[Path], options: HuntOptions) -> Any:
    """An in-memory DuckDB connection with the hunting views over `paths`."""
    import duckdb

    inputs: Inputs = discover(paths)
    con = duckdb.connect(":memory:")
    selects: dict[str, list[str]] = {t: [] for t in TABLES}
    if inputs.runs:
        if options.cache_dir is not None:
            check_outside(options.cache_dir, paths)
            folders = cached_segments(inputs.runs, options.cache_dir, options.workers)
            for table in TABLES:
                files = ", ".join(_lit(str(f / f"{table}.parquet")) for f in folders)
                selects[table].append(f"SELECT * FROM read_parquet([{files}])")
        else:
            cols = parse_segment(inputs.runs)
            for table in TABLES:
                con.register(f"_mem_{table}", cols.to_arrow(table))
                selects[table].append(f"SELECT * FROM _mem_{table}")
    for ds in inputs.datasets:
        _check_dataset(con, ds)
        for table in DATASET_TABLES:
            selects[table].extend(_dataset_selects(ds, table))
    for table in TABLES:
        order = ", ".join(_q(c.name) for c in TABLES[table])
        parts = [f"SELECT {order} FROM ({s})" for s in selects[table]] or [_empty(table)]
        con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(parts))
    return con


# Canned hunts: (SQL, parameter). The run's coordinates come first, then what matched.
_IOC_SQL = """
WITH m AS (
  SELECT run_id, phase, 'dns' AS matched, hostname AS detail FROM dns
   WHERE lower(hostname) = lower($1) OR lower(hostname) LIKE '%.' || lower($1)
  UNION ALL
  SELECT run_id, phase, 'socket', address || ':' || port FROM sockets
   WHERE address = $1 OR list_contains(list_transform(hostnames, lambda x: lower(x)), lower($1))
  UNION ALL
  SELECT run_id, phase, 'flow:' || kind, coalesce(hostname, dst) || ':' || coalesce(CAST(dst_port AS VARCHAR), '')
    FROM flows
   WHERE dst = $1 OR lower(hostname) = lower($1) OR lower(hostname) LIKE '%.' || lower($1)
      OR lower(tls_sni) = lower($1) OR lower(http_host) = lower($1) OR payload_sha256 = lower($1)
      OR list_contains(answer, $1)
  UNION ALL
  SELECT run_id, phase, 'connect', address || ':' || port FROM events
   WHERE kind = 'network' AND address = $1
  UNION ALL
  SELECT run_id, NULL, 'archive', archive FROM runs WHERE lower(sha256) = lower($1)
)
SELECT DISTINCT r.ecosystem, r.name, r.version, m.phase, m.matched, m.detail, r.verdict, m.run_id
  FROM m JOIN runs r USING (run_id)
 ORDER BY r.ecosystem, r.name, r.version, m.run_id, m.phase, m.matched, m.detail
"""

_READS_SQL = """
SELECT r.ecosystem, r.name, r.version, f.phase, f.path, r.verdict, f.run_id
  FROM files f JOIN runs r USING (run_id)
 WHERE f.read AND (f.path GLOB $1 OR coalesce(f.template GLOB $1, false))
 ORDER BY r.ecosystem, r.name, r.version, f.run_id, f.phase, f.path
"""

_COMMAND_SQL = """
SELECT r.ecosystem, r.name, r.version, c.phase, c.command_line, r.verdict, c.run_id
  FROM commands c JOIN runs r USING (run_id)
 WHERE regexp_matches(c.command_line, $1)
 ORDER BY r.ecosystem, r.name, r.version, c.run_id, c.phase, c.command_line
"""

CANNED = {"ioc": _IOC_SQL, "reads": _READS_SQL, "runs_command": _COMMAND_SQL}


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def query(con: Any, sql: str, params: list[Any] | None = None) -> Result:
    import duckdb

    try:
        cur = con.execute(sql, params or [])
        if cur.description is None:
            return Result([], [])
        columns = [d[0] for d in cur.description]
        return Result(columns, cur.fetchall())
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"SQL error: {first}") from None
