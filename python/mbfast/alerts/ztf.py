"""ZTF alert packets (schemas 3.x and 4.x): quality cuts, and one packet -> step rows (objectId <-> int64 is
mbfast.lightcurves.object_ids').

A packet holds the triggering detection (`candidate`) and up to 30 days of history (`prv_candidates`, upper
limits included). This module turns one decoded packet (a dict, from Avro or Fink Parquet) into rows; it does
not read files (mbfast.alerts does) and does not deduplicate history across packets (mbfast.jobs.stream does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from mbfast.alerts.rows import RowBuilder
from mbfast.alerts.schema import INTEGER, NUMBER, STRING, Requirement, Tree, has
from mbfast.lightcurves.object_ids import ztf_object_id, ztf_object_name
from mbfast.lightcurves.photometry import LOW_SNR, MAG_PER_LN_FLUX
from mbfast.lightcurves.surveys import ZTF

# jd -> MJD
JD_MINUS_MJD = 2400000.5
FID_BANDS = {code: band for code, band in ZTF.codes.items() if isinstance(code, int)}  # surveys.ZTF's table
SUPPORTED_MAJORS = (3, 4)
# err_mag = 1.0857 err_F / F, so flux > err_F (the paper's S/N cut) is sigmapsf < 1.0857
MAX_SIGMAPSF = MAG_PER_LN_FLUX

# Fields read from a packet; everything else (cutouts, PS1/Gaia cross-matches ...) is skipped while decoding.
FIELDS = frozenset({"schemavsn", "objectId", "candid", "candidate", "prv_candidates", "jd", "fid", "magpsf",
                    "sigmapsf", "isdiffpos", "rb", "drb", "nbad", "magnr", "sigmagnr", "distnr"})

# Fields a schema must have (mbfast.alerts.schema.check); rb, drb, nbad and the reference-source fields may be
# absent (their cuts then do not apply). History is optional, but when present its entries need the same fields.
DETECTION = ((("jd",),), NUMBER), ((("fid",),), INTEGER), ((("magpsf",),), NUMBER), ((("sigmapsf",),), NUMBER), \
    ((("isdiffpos",),), STRING)


def required(tree: Tree) -> tuple[Requirement, ...]:
    """What a ZTF packet schema must hold: objectId, candid, the candidate's detection fields, and the same in
    prv_candidates when the schema has them."""
    needed: list[Requirement] = [((("objectId",),), STRING), ((("candid",), ("candidate", "candid")), INTEGER)]
    for part in ("candidate", "prv_candidates"):
        if part == "candidate" or has(tree, (part,)):
            needed += [(tuple((part, *path) for path in paths), kinds) for paths, kinds in DETECTION]
    return tuple(needed)


@dataclass(frozen=True)
class ZtfCuts:
    """Which ZTF detections become step rows. Always applied: magpsf and sigmapsf present, finite, sigmapsf in
    (0, 1.0857) (flux > flux error, as for LSST), fid in 1..3, and a positive difference (isdiffpos 't'/'1')
    unless `apparent` is on. A None threshold is off; a row whose score is null passes that cut.

    min_rb : RealBogus score (rb) >= this. Default 0.65 and max_nbad default 0: the rb and nbad terms of the
        purity filter in the ZTF alert documentation (ztf-avro-alert docs/filtering.md, from IPAC tests), whose
        shape terms (fwhm, elong, magdiff) are not applied here.
    min_drb : deep-learning RealBogus (drb, schema >= 3.3) >= this. Default off.
    max_nbad : bad pixels in the 5x5 stamp <= this.
    apparent : replace the difference magnitude with the apparent one (reference + difference flux) where
        the nearest reference source is within `max_distnr` pixels (1.01 arcsec each); off by default.
    """

    min_rb: float | None = 0.65
    min_drb: float | None = None
    max_nbad: int | None = 0
    apparent: bool = False
    max_distnr: float = 1.4


def apparent_magnitude(magpsf: float, sigmapsf: float, magnr: float, sigmagnr: float,
                       positive: bool) -> tuple[float, float] | None:
    """Apparent magnitude of a source on top of a reference-image source, or None when the total flux <= 0.

    Fluxes in units of the zero point: f_ref = 10**(-0.4 magnr), f_diff = 10**(-0.4 magpsf),
    f = f_ref + s f_diff with s = +1 for a positive difference and -1 for a negative one; m = -2.5 log10 f,
    err = sqrt((f_diff sigmapsf)**2 + (f_ref sigmagnr)**2) / f (first-order propagation in magnitudes).

    >>> round(apparent_magnitude(20.0, 0.1, 20.0, 0.0, True)[0], 4)   # doubles the flux: 0.75 mag brighter
    19.2474
    """
    f_ref = 10.0 ** (-0.4 * magnr)
    f_diff = 10.0 ** (-0.4 * magpsf)
    flux = f_ref + (f_diff if positive else -f_diff)
    if not flux > 0:
        return None
    return -2.5 * math.log10(flux), math.hypot(f_diff * sigmapsf, f_ref * sigmagnr) / flux


def schema_version(version: Any) -> tuple[int, int]:
    """'3.3' -> (3, 3), '4.02' -> (4, 2); raises ValueError for a missing or unsupported schema version."""
    try:
        major, minor = (int(part) for part in str(version).split("."))
    except ValueError:
        raise ValueError(f"unknown ZTF schema version {version!r}") from None
    if major not in SUPPORTED_MAJORS:
        newer = " is newer than this mbfast reads" if major > max(SUPPORTED_MAJORS) else " is not supported"
        raise ValueError(f"ZTF schema version {version}{newer} (reads 3.x and 4.x)")
    return major, minor


def add_packet(packet: dict[str, Any], rows: RowBuilder, cuts: ZtfCuts, file: int, index: int) -> None:
    """Append one ZTF packet's current detection and history to `rows`; raises ValueError if it is malformed."""
    # drb exists from 3.3; older packets re-encoded by Spark (Kafka dumps) carry drb = 0.0, not null
    if schema_version(packet.get("schemavsn")) < (3, 3):
        cuts = replace(cuts, min_drb=None)
    name = packet.get("objectId")
    if not isinstance(name, str):
        raise ValueError(f"objectId missing or not a string: {name!r}")
    obj_id = ztf_object_id(name)
    candidate = packet.get("candidate")
    if not isinstance(candidate, dict):
        raise ValueError("packet has no candidate")
    alert_id = packet.get("candid") or candidate.get("candid")
    jd = candidate.get("jd")
    if alert_id is None or jd is None:
        raise ValueError("candidate has no candid or jd")
    rows.names[obj_id] = name
    row = _add_detection(candidate, rows, cuts, obj_id, int(alert_id), True, file, index)
    rows.add_alert(int(alert_id), obj_id, float(jd) - JD_MINUS_MJD, row, file, index)
    for previous in packet.get("prv_candidates") or ():
        _add_detection(previous, rows, cuts, obj_id, int(alert_id), False, file, index)


def _add_detection(det: dict[str, Any], rows: RowBuilder, cuts: ZtfCuts, obj_id: int, alert_id: int,
                   current: bool, file: int, index: int) -> int:
    """Apply the cuts to one candidate / prv_candidate; append it and return its row, or -1 if skipped."""
    magpsf, sigmapsf = det.get("magpsf"), det.get("sigmapsf")
    if magpsf is None:  # prv_candidates also carry upper limits: no magpsf, only diffmaglim
        return rows.skip("non-detection")
    band = FID_BANDS.get(det.get("fid"))  # type: ignore[arg-type]
    if band is None:
        return rows.skip("unknown fid")
    if sigmapsf is None or not (0 < sigmapsf < MAX_SIGMAPSF) or not math.isfinite(magpsf):
        return rows.skip(LOW_SNR)
    positive = det.get("isdiffpos") in ("t", "1")
    rb, drb, nbad = det.get("rb"), det.get("drb"), det.get("nbad")
    if cuts.min_rb is not None and rb is not None and rb < cuts.min_rb:
        return rows.skip("rb")
    if cuts.min_drb is not None and drb is not None and drb < cuts.min_drb:
        return rows.skip("drb")
    if cuts.max_nbad is not None and nbad is not None and nbad > cuts.max_nbad:
        return rows.skip("nbad")
    mag, err = float(magpsf), float(sigmapsf)
    magnr, sigmagnr, distnr = det.get("magnr"), det.get("sigmagnr"), det.get("distnr")
    if (cuts.apparent and magnr is not None and sigmagnr is not None and distnr is not None
            and 0 <= distnr < cuts.max_distnr and magnr > 0):
        corrected = apparent_magnitude(mag, err, float(magnr), float(sigmagnr), positive)
        if corrected is None:
            return rows.skip("apparent flux <= 0")
        mag, err = corrected
    elif not positive:  # |difference flux| of a fading source is not its brightness
        return rows.skip("negative difference")
    if det.get("jd") is None:
        return rows.skip("no jd")
    return rows.add(obj_id, band, float(det["jd"]) - JD_MINUS_MJD, mag, err, alert_id, current, file, index)


__all__ = ["FID_BANDS", "ZtfCuts", "add_packet", "apparent_magnitude", "required", "schema_version",
           "ztf_object_id", "ztf_object_name"]
