"""AlertRows: detections read from alert packets as flat columns, ready for Engine.step, plus one line per alert.

R rows (detections that passed the cuts, current and history, in read order; history repeats across packets
of one object) and A alerts (packets read). Built by mbfast.alerts readers through RowBuilder.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mbfast.lightcurves.surveys import Survey


@dataclass(frozen=True)
class AlertProblem:
    """A packet that could not be used: `file` path, 0-based `packet` index in that file (-1: the whole file)."""

    file: str
    packet: int
    message: str

    def __str__(self) -> str:
        where = "whole file" if self.packet < 0 else f"packet {self.packet}"
        return f"{self.file}: {where}: {self.message}"


class AlertError(ValueError):
    """A corrupt, truncated or unsupported packet; the message names the file and the packet index."""

    def __init__(self, problem: AlertProblem):
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class AlertRows:
    """Step rows and alerts from one batch of alert files.

    Rows (R): obj_id int64, band int8 index into `survey.bands`, t float64 MJD (days), mag float32 AB,
    err float32 mag (1-sigma), alert_id int64 (the packet that carried the row), current bool (the packet's
    own detection, not history), file int32 index into `files`, packet int32 index in that file.
    Alerts (A): alert_obj_id int64, alert_id int64 (ZTF candid; LSST alertId or diaSourceId), alert_t float64 MJD
    of the triggering detection, alert_row int64 (its row, -1 when the cuts dropped it), alert_file int32,
    alert_packet int32.
    names : obj_id -> the survey's string id where it has one (ZTF objectId).
    problems : packets that could not be read (batch mode); skipped : detections dropped, by reason.
    """

    survey: Survey
    obj_id: np.ndarray      # (R,) int64
    band: np.ndarray        # (R,) int8
    t: np.ndarray           # (R,) float64
    mag: np.ndarray         # (R,) float32
    err: np.ndarray         # (R,) float32
    alert_id: np.ndarray    # (R,) int64
    current: np.ndarray     # (R,) bool
    file: np.ndarray        # (R,) int32
    packet: np.ndarray      # (R,) int32
    alert_obj_id: np.ndarray  # (A,) int64
    alert_alert_id: np.ndarray  # (A,) int64
    alert_t: np.ndarray     # (A,) float64
    alert_row: np.ndarray   # (A,) int64
    alert_file: np.ndarray  # (A,) int32
    alert_packet: np.ndarray  # (A,) int32
    files: tuple[str, ...]
    names: dict[int, str] = field(default_factory=dict)
    problems: list[AlertProblem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    @property
    def n_alerts(self) -> int:
        return len(self.alert_t)

    def bands_as_labels(self) -> np.ndarray:
        """(R,) str: band labels as the survey writes them."""
        return np.asarray(self.survey.bands)[self.band]


class RowBuilder:
    """Collects rows and alerts packet by packet (Python lists), then freezes them into AlertRows."""

    def __init__(self, survey: Survey):
        self.survey = survey
        self._band_index = {label: index for index, label in enumerate(survey.bands)}
        self.rows: list[tuple[int, int, float, float, float, int, bool, int, int]] = []
        self.alerts: list[tuple[int, int, float, int, int, int]] = []
        self.names: dict[int, str] = {}
        self.skipped: Counter[str] = Counter()
        self.files: list[str] = []
        self.problems: list[AlertProblem] = []

    def add(self, obj_id: int, band: str, t: float, mag: float, err: float, alert_id: int, current: bool,
            file: int, packet: int) -> int:
        """Append a detection; returns its row index."""
        self.rows.append((obj_id, self._band_index[band], t, mag, err, alert_id, current, file, packet))
        return len(self.rows) - 1

    def skip(self, reason: str) -> int:
        self.skipped[reason] += 1
        return -1

    def add_alert(self, alert_id: int, obj_id: int, t: float, row: int, file: int, packet: int) -> None:
        self.alerts.append((obj_id, alert_id, t, row, file, packet))

    def mark(self) -> tuple[int, int, dict[int, str], Counter[str]]:
        """Undo point before a packet, so a packet that fails half-way adds nothing."""
        return len(self.rows), len(self.alerts), dict(self.names), Counter(self.skipped)

    def rollback(self, mark: tuple[int, int, dict[int, str], Counter[str]]) -> None:
        n_rows, n_alerts, self.names, self.skipped = mark
        del self.rows[n_rows:]
        del self.alerts[n_alerts:]

    def build(self) -> AlertRows:
        rows = self.rows
        alerts = self.alerts

        def column(values: list, dtype: type) -> np.ndarray:  # type: ignore[type-arg]
            return np.array(values, dtype=dtype)

        obj_id, band, t, mag, err, alert_id, current, file, packet = zip(*rows) if rows else ((),) * 9
        a_obj, a_id, a_t, a_row, a_file, a_packet = zip(*alerts) if alerts else ((),) * 6
        return AlertRows(
            survey=self.survey, obj_id=column(obj_id, np.int64), band=column(band, np.int8),
            t=column(t, np.float64), mag=column(mag, np.float32), err=column(err, np.float32),
            alert_id=column(alert_id, np.int64), current=column(current, np.bool_), file=column(file, np.int32),
            packet=column(packet, np.int32), alert_obj_id=column(a_obj, np.int64),
            alert_alert_id=column(a_id, np.int64), alert_t=column(a_t, np.float64),
            alert_row=column(a_row, np.int64), alert_file=column(a_file, np.int32),
            alert_packet=column(a_packet, np.int32), files=tuple(self.files), names=dict(self.names),
            problems=list(self.problems), skipped=dict(self.skipped))
