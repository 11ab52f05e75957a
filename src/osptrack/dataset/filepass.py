"""The File-record pass over a whole chunk of reports, column-wise.

Files are ~99% of a report's records (about 4,000 in the paper's malicious reports), so this is
the hot path of `dataset build`. Instead of a Python loop doing several things per record, each
step is one C-speed pass over a column: attribute extraction with `map(attrgetter)`, templating
through the path cache with `map(dict.get)`, baseline lookups with `map(dict.get, ..., repeat)`,
flag arithmetic in numpy, and the package-name search with Arrow's substring kernel. Python only
loops over the records that survive noise removal (to classify them) and the cache misses.

The result is what build.py needs: the nested `<phase>_Files` Arrow columns (raw fields plus
`Template` and `Noise`), the per-report File features and noise figures, and the OSPtrack CSV
cell text of each report's install and import Files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from osptrack.dataset.baseline import Baseline, PhaseNoise
from osptrack.dataset.features import NoiseFigures, classify_path
from osptrack.dataset.model import PHASES, RunRecord
from osptrack.dataset.templating import PATH_CACHE, Templater, template_generic

FILE_T = pa.struct(
    [
        ("Path", pa.string()),
        ("Read", pa.bool_()),
        ("Write", pa.bool_()),
        ("Delete", pa.bool_()),
        ("Template", pa.string()),
        ("Noise", pa.bool_()),
    ]
)
CSV_PHASES = ("import", "install")  # the phases OSPtrack's CSV has

_path = attrgetter("Path")
_read = attrgetter("Read")
_write = attrgetter("Write")
_delete = attrgetter("Delete")
_PREFIX = "{'Path': "
# The tail of one dict's repr for each Read/Write/Delete combination, as `str(list_of_dicts)` prints.
_SUFFIX = [f", 'Read': {bool(m & 1)}, 'Write': {bool(m & 2)}, 'Delete': {bool(m & 4)}}}" for m in range(8)]
_EMPTY = PhaseNoise()


@dataclass
class FilesPass:
    columns: dict[str, pa.Array] = field(default_factory=dict)  # phase -> list<FILE_T>
    feats: list[dict[str, int]] = field(default_factory=list)  # per report
    figures: list[NoiseFigures] = field(default_factory=list)  # per report
    csv_cells: dict[str, list[str]] = field(default_factory=dict)  # phase -> per report cell ("[]" if absent)


def _bools(getter: Any, items: list[Any]) -> np.ndarray:
    return np.fromiter(map(getter, items), dtype=np.bool_, count=len(items))


def _generic_templates(paths: list[str]) -> list[str]:
    templates: list[Any] = list(map(PATH_CACHE.get, paths))
    if None in templates:
        for i, t in enumerate(templates):
            if t is None:
                templates[i] = template_generic(paths[i])
    return templates


_KEY_ARRAYS: dict[int, tuple[dict[str, int], pa.Array, np.ndarray]] = {}


def _key_arrays(keys: dict[str, int]) -> tuple[pa.Array, np.ndarray]:
    """A baseline's key -> mask dict as Arrow keys and numpy masks, for `index_in` (built once)."""
    hit = _KEY_ARRAYS.get(id(keys))
    if hit is None or hit[0] is not keys:
        hit = (keys, pa.array(list(keys), type=pa.string()), np.fromiter(keys.values(), np.int16, len(keys)))
        _KEY_ARRAYS[id(keys)] = hit  # the dict is kept alive here, so its id cannot be reused
    return hit[1], hit[2]


def _baseline_masks(values: pa.Array, keys: dict[str, int]) -> np.ndarray:
    """For each value, the baseline's flag mask for it, or -1: one hash join in Arrow."""
    if not keys or len(values) == 0:
        return np.full(len(values), -1, dtype=np.int16)
    key_arr, key_masks = _key_arrays(keys)
    idx = pc.fill_null(pc.index_in(values, value_set=key_arr), -1).to_numpy(zero_copy_only=False)
    return np.where(idx >= 0, key_masks[idx], -1).astype(np.int16)


def _package_stage(
    generic: pa.Array, seg: list[str], templater: Templater
) -> tuple[list[str], dict[int, str]]:
    """The package's own name and version in one report's paths. Arrow finds the paths that
    contain a spelling of the name (one regex call), and rewrites just those (`package_many`).
    Returns the new templates and, for each changed index, the template before."""
    hit = pc.match_substring_regex(generic, templater.detect_pattern).to_numpy(zero_copy_only=False)
    positions = np.flatnonzero(hit).tolist()
    if not positions:
        return seg, {}
    before = [seg[j] for j in positions]
    new = list(seg)
    changed: dict[int, str] = {}
    for j, old, after in zip(positions, before, templater.package_many(before), strict=True):
        if after != old:
            new[j] = after
            changed[j] = old
    return new, changed


def files_pass(
    records: list[RunRecord],
    templaters: list[Templater],
    baselines: dict[str, Baseline],
    want_csv: bool = True,
) -> FilesPass:
    out = FilesPass(feats=[{} for _ in records], figures=[NoiseFigures() for _ in records])
    for phase in PHASES:
        segments = [(r.phases[phase].Files or []) if phase in r.phases else None for r in records]
        lengths = [len(s) if s is not None else 0 for s in segments]
        offsets = np.zeros(len(records) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat: list[Any] = list(chain.from_iterable(s for s in segments if s))
        paths: list[str] = list(map(_path, flat))
        reads, writes, deletes = _bools(_read, flat), _bools(_write, flat), _bools(_delete, flat)
        masks = reads.astype(np.int16) | (writes.astype(np.int16) << 1) | (deletes.astype(np.int16) << 2)
        templates = _generic_templates(paths)
        renamed: list[dict[int, str]] = [{} for _ in records]
        generic_arr = pa.array(templates, type=pa.string())
        for i, seg in enumerate(segments):
            if seg and templaters[i].variants:
                o, n = int(offsets[i]), lengths[i]
                templates[o : o + n], renamed[i] = _package_stage(
                    generic_arr.slice(o, n), templates[o : o + n], templaters[i]
                )
        paths_arr = pa.array(paths, type=pa.string())
        templates_arr = pa.array(templates, type=pa.string())
        # Baseline lookups for the whole chunk, once per ecosystem present (usually one).
        noise_of: dict[str, PhaseNoise] = {}
        base_all: dict[str, np.ndarray] = {}
        exact_all: dict[str, np.ndarray] = {}
        for eco in {r.ecosystem for r, s in zip(records, segments, strict=True) if s}:
            baseline = baselines.get(eco)
            noise_of[eco] = baseline.for_phase(phase) if baseline is not None else _EMPTY
            base_all[eco] = _baseline_masks(templates_arr, noise_of[eco].files)
            exact_all[eco] = _baseline_masks(paths_arr, noise_of[eco].files_exact)
        noise_parts: list[np.ndarray] = []
        for i, record in enumerate(records):
            seg = segments[i]
            if seg is None:
                continue
            o, n = int(offsets[i]), lengths[i]
            noise_keys = noise_of.get(record.ecosystem, _EMPTY)
            seg_t = templates[o : o + n]
            seg_m = masks[o : o + n]
            base_m = base_all[record.ecosystem][o : o + n].copy() if n else np.zeros(0, np.int16)
            # The toolchain's own copy of a same-named package (npm's bundled chalk, pip's vendored
            # six) is in the baseline under its real name, not as <PKG>.
            for j, generic in renamed[i].items():
                if base_m[j] < 0:
                    base_m[j] = noise_keys.files.get(generic, -1)
            noise = (base_m >= 0) & ((seg_m & ~base_m) == 0)
            exact_m = exact_all[record.ecosystem][o : o + n] if n else np.zeros(0, np.int16)
            exact = int(((exact_m >= 0) & ((seg_m & ~exact_m) == 0) & noise).sum())
            noise_parts.append(noise)
            keep = ~noise
            feats = out.feats[i]
            kept = int(keep.sum())
            feats[f"{phase}_files_raw_n"] = n
            feats[f"{phase}_files_n"] = kept
            feats[f"{phase}_files_read_n"] = int((reads[o : o + n] & keep).sum())
            feats[f"{phase}_files_write_n"] = int((writes[o : o + n] & keep).sum())
            feats[f"{phase}_files_delete_n"] = int((deletes[o : o + n] & keep).sum())
            for j in np.flatnonzero(keep).tolist():
                m = int(seg_m[j])
                if not m & 3:
                    continue  # delete-only: no read or write category applies
                read_cats, write_cats, outside = classify_path(seg_t[j])
                if m & 1:
                    for c in read_cats:
                        key = f"{phase}_read_{c}_n"
                        feats[key] = feats.get(key, 0) + 1
                if m & 2:
                    for c in write_cats:
                        key = f"{phase}_write_{c}_n"
                        feats[key] = feats.get(key, 0) + 1
                    if outside:
                        key = f"{phase}_write_outside_tree_n"
                        feats[key] = feats.get(key, 0) + 1
            fig = out.figures[i]
            fig.raw["files"] += n
            fig.noise["files"] += n - kept
            fig.exact["files"] += exact
            fig.templated_changed += n - sum(map(str.__eq__, paths[o : o + n], seg_t))
        noise_all = np.concatenate(noise_parts) if noise_parts else np.zeros(0, dtype=np.bool_)
        values = pa.StructArray.from_arrays(
            [
                paths_arr,
                pa.array(reads),
                pa.array(writes),
                pa.array(deletes),
                templates_arr,
                pa.array(noise_all),
            ],
            fields=list(FILE_T),
        )
        null = pa.array([s is None for s in segments], type=pa.bool_())
        out.columns[phase] = pa.ListArray.from_arrays(
            pa.array(offsets, type=pa.int32()), values, type=pa.list_(FILE_T), mask=null
        )
        if want_csv and phase in CSV_PHASES:
            out.csv_cells[phase] = _csv_cells(paths, masks, offsets, segments)
    return out


# A path's repr() is simply '<path>' unless it has quotes, backslashes, control or non-ASCII characters.
# The text between two plain paths: the tail of one dict and the head of the next.
_BETWEEN = [f"'{suffix}, {{'Path': '" for suffix in _SUFFIX]
_BETWEEN_TAIL = len(", {'Path': '")


def _csv_cells(paths: list[str], masks: np.ndarray, offsets: np.ndarray, segments: list[Any]) -> list[str]:
    """Each report's Files as OSPtrack wrote them: `str()` of a list of package-analysis dicts."""
    mask_list = masks.tolist()
    cells = []
    for i, seg in enumerate(segments):
        if not seg:
            cells.append("[]")
            continue
        o, e = int(offsets[i]), int(offsets[i + 1])
        seg_paths, seg_masks = paths[o:e], mask_list[o:e]
        joined = "/".join(seg_paths)
        if joined.isascii() and joined.isprintable() and "'" not in joined and "\\" not in joined:
            # Fast path: interleave paths with the fixed text between them (one join, no repr).
            parts: list[str] = [""] * (2 * len(seg_paths))
            parts[0::2] = seg_paths
            parts[1::2] = map(_BETWEEN.__getitem__, seg_masks)
            cells.append("[{'Path': '" + "".join(parts)[:-_BETWEEN_TAIL] + "]")
        else:
            items = map(
                str.__add__, map(_PREFIX.__add__, map(repr, seg_paths)), map(_SUFFIX.__getitem__, seg_masks)
            )
            cells.append("[" + ", ".join(items) + "]")
    return cells
