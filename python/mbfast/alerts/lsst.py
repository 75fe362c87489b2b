"""Rubin/LSST alert packets (lsst.v4 to v11 schemas): one packet -> step rows.

A packet holds the triggering `diaSource` and the 12-month history `prvDiaSources`; fluxes are difference-image
PSF fluxes in nJy. Forced photometry (`prvDiaForcedSources`) and non-detection limits are not used: the model
is trained on detections. This module does not read files (mbfast.alerts does).
"""
from __future__ import annotations

import math
import re
from typing import Any

from mbfast.alerts.rows import RowBuilder
from mbfast.alerts.schema import INTEGER, NUMBER, STRING, Requirement, Tree, has
from mbfast.lightcurves.photometry import LOW_SNR, LSST_NJY_ZERO_POINT, MAG_PER_LN_FLUX

SUPPORTED_MAJORS = range(4, 12)
# Field names changed across schema versions: (current, older)
BAND = ("band", "filterName")
TIME = ("midpointMjdTai", "midPointTai")
FLUX = ("psfFlux", "psFlux")
FLUX_ERR = ("psfFluxErr", "psFluxErr")

FIELDS = frozenset({"alertId", "diaSourceId", "diaSource", "prvDiaSources", "diaObjectId",
                    *BAND, *TIME, *FLUX, *FLUX_ERR})


def required(tree: Tree) -> tuple[Requirement, ...]:
    """What an LSST packet schema must hold: the alert id, the diaSource's object id, band, time and flux, and the
    same (object id aside) in prvDiaSources when the schema has them."""
    needed: list[Requirement] = [((("alertId",), ("diaSourceId",), ("diaSource", "diaSourceId")), INTEGER),
                                 ((("diaSource", "diaObjectId"),), INTEGER)]
    for part in ("diaSource", "prvDiaSources"):
        if part == "diaSource" or has(tree, (part,)):
            needed += [(((part, BAND[0]), (part, BAND[1])), STRING), (((part, TIME[0]), (part, TIME[1])), NUMBER),
                       (((part, FLUX[0]), (part, FLUX[1])), NUMBER),
                       (((part, FLUX_ERR[0]), (part, FLUX_ERR[1])), NUMBER)]
    return tuple(needed)


_VERSION = re.compile(r"lsst\.v(\d+)_(\d+)(\.alert)?")


def schema_version(name: str | None) -> tuple[int, int] | None:
    """'lsst.v10_0.alert' or 'lsst.v10_0' -> (10, 0); None when the source does not say (then fields decide).

    Raises ValueError for a version outside 4.x - 11.x or a schema that is not an LSST alert schema.
    """
    if name is None:
        return None
    match = _VERSION.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown alert schema {name!r} (reads lsst.v4_0 to lsst.v11_x and ztf.alert 3.x-4.x)")
    version = int(match.group(1)), int(match.group(2))
    if version[0] not in SUPPORTED_MAJORS:
        newer = "is newer than this mbfast reads" if version[0] > SUPPORTED_MAJORS[-1] else "is not supported"
        raise ValueError(f"LSST alert schema {name} {newer} (reads lsst.v4_0 to lsst.v11_x)")
    return version


def _first(record: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in record:
            return record[name]
    return None


def add_packet(packet: dict[str, Any], rows: RowBuilder, file: int, index: int) -> None:
    """Append one LSST packet's diaSource and prvDiaSources to `rows`; raises ValueError if it is malformed."""
    source = packet.get("diaSource")
    if not isinstance(source, dict):
        raise ValueError("packet has no diaSource")
    alert_id = packet.get("alertId") or packet.get("diaSourceId") or source.get("diaSourceId")
    t = _first(source, TIME)
    if alert_id is None or t is None:
        raise ValueError("diaSource has no diaSourceId or midpointMjdTai")
    obj_id = source.get("diaObjectId")
    if not obj_id:  # null or 0: a solar-system source (ssObjectId), not a DIAObject the engine can follow
        rows.skip("no diaObjectId")
        rows.add_alert(int(alert_id), 0, float(t), -1, file, index)
        return
    row = _add_source(source, rows, int(obj_id), int(alert_id), True, file, index)
    rows.add_alert(int(alert_id), int(obj_id), float(t), row, file, index)
    for previous in packet.get("prvDiaSources") or ():
        _add_source(previous, rows, int(obj_id), int(alert_id), False, file, index)


def _add_source(source: dict[str, Any], rows: RowBuilder, obj_id: int, alert_id: int, current: bool, file: int,
                index: int) -> int:
    band, t = _first(source, BAND), _first(source, TIME)
    flux, flux_err = _first(source, FLUX), _first(source, FLUX_ERR)
    if band not in rows.survey.bands:
        return rows.skip("unknown band")
    if t is None or flux is None or flux_err is None:
        return rows.skip("missing time or flux")
    if not (math.isfinite(flux) and math.isfinite(flux_err) and 0 < flux_err < flux):
        return rows.skip(LOW_SNR)
    # m = 31.4 - 2.5 log10(F / nJy); err = 1.0857 err_F / F
    return rows.add(obj_id, band, float(t), LSST_NJY_ZERO_POINT - 2.5 * math.log10(flux),
                    MAG_PER_LN_FLUX * flux_err / flux, alert_id, current, file, index)


__all__ = ["add_packet", "required", "schema_version"]
