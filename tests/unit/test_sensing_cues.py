"""Per-link cues: each reads what it should from a stream whose truth is known by construction (a tone
modulated at a chosen frequency, an RSSI step of a chosen size), and the empty-room reference learns only
when it is told to."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from appliance.csi.prep import CANONICAL_SUBCARRIERS, PreparedSample
from appliance.pose.sensing.cues import (
    DOPPLER_BANDS_HZ,
    N_CUE_FEATURES,
    LinkCueExtractor,
    RoomCueExtractor,
    cue_vectors,
    link_cues,
)

RATE_HZ = 100.0
K = CANONICAL_SUBCARRIERS.size
RNG_SEED = 3


class Stream:
    """Prepared samples of one link: a fixed amplitude profile with noise, optionally modulated."""

    def __init__(self, link: str = "a-b", noise: float = 0.01, pairs: int = 1) -> None:
        self.link = link
        self.rng = np.random.default_rng(RNG_SEED)
        self.profile = 1.0 + 0.3 * np.cos(np.arange(K) / 5.0)
        self.profile /= np.sqrt(np.mean(self.profile**2))
        self.noise = noise
        self.pairs = pairs
        self.i = 0

    def sample(self, *, rssi: float = -50.0, modulation: float = 0.0) -> PreparedSample:
        t = self.i / RATE_HZ
        self.i += 1
        amplitude = self.profile * (1 + modulation * np.cos(np.arange(K) / 3.0))
        amplitude = amplitude + self.rng.normal(0, self.noise, (self.pairs, K))
        return PreparedSample(
            link=self.link,
            t_s=t,
            amplitude=np.abs(amplitude).astype(np.float32),
            phase=np.zeros((self.pairs, K), np.float32),
            gain=np.full(self.pairs, 20.0, np.float32),
            rssi_dbm=rssi,
            valid=True,
        )


def calibrated(seconds: float = 6.0) -> tuple[LinkCueExtractor, Stream]:
    stream = Stream()
    extractor = LinkCueExtractor(stream.link, RATE_HZ)
    for _ in range(round(seconds * RATE_HZ)):
        extractor.push(stream.sample())
        if stream.i % 100 == 0:
            extractor.learn(1.0)
    return extractor, stream


def test_an_empty_room_reads_as_its_own_reference() -> None:
    extractor, stream = calibrated()
    for _ in range(200):
        extractor.push(stream.sample())
    cues = extractor.cues()
    assert cues is not None and cues.ready
    assert cues.rssi_change_db == pytest.approx(0.0, abs=1e-9)
    assert 0.5 < cues.beat < 2.0  # noise over noise
    assert cues.profile_change < 5.0


def test_a_body_beating_at_a_known_frequency_lights_that_doppler_bin() -> None:
    """A tone modulated at 9 Hz (an echo beating against the static paths at a 9 Hz bistatic Doppler)."""
    extractor, stream = calibrated()
    frequency = 9.0
    for _ in range(150):
        t = stream.i / RATE_HZ
        extractor.push(stream.sample(modulation=0.05 * math.cos(2 * math.pi * frequency * t)))
    cues = extractor.cues()
    assert cues is not None
    assert int(np.argmax(cues.doppler[2:])) + 2 == round(frequency)
    assert cues.beat > 5.0  # the one bin against the whole band's noise
    vector = cue_vectors([cues])[0]
    assert vector.shape == (N_CUE_FEATURES,)
    # The band holding 9 Hz is the strongest of the Doppler bands.
    bands = vector[5 : 5 + len(DOPPLER_BANDS_HZ)]
    assert int(np.argmax(bands)) == next(i for i, (lo, hi) in enumerate(DOPPLER_BANDS_HZ) if lo <= 9 < hi)


def test_rssi_change_is_the_step_against_the_empty_room() -> None:
    extractor, stream = calibrated()
    for _ in range(150):
        extractor.push(stream.sample(rssi=-53.0))
    cues = extractor.cues()
    assert cues is not None
    assert cues.rssi_change_db == pytest.approx(-3.0)
    assert cues.rssi_empty_dbm == pytest.approx(-50.0)


def test_breathing_band_power_rises_with_a_slow_modulation() -> None:
    extractor, stream = calibrated(seconds=35.0)
    quiet = extractor.cues()
    for _ in range(round(32 * RATE_HZ)):
        t = stream.i / RATE_HZ
        extractor.push(stream.sample(modulation=0.01 * math.sin(2 * math.pi * 0.25 * t)))
    breathing = extractor.cues()
    assert quiet is not None and breathing is not None
    assert breathing.breathing > 10 * max(quiet.breathing, 1.0)


def test_the_reference_adapts_only_when_the_room_is_said_to_be_empty() -> None:
    extractor, stream = calibrated()
    for _ in range(300):
        extractor.push(stream.sample(rssi=-52.0))
    cues = extractor.cues()
    assert cues is not None and cues.rssi_change_db == pytest.approx(-2.0)
    # Someone still in the room: nothing is learnt, however long.
    for _ in range(300):
        extractor.push(stream.sample(rssi=-52.0))
    cues = extractor.cues()
    assert cues is not None and cues.rssi_change_db == pytest.approx(-2.0)
    # The room confidently empty for ten minutes (at the adaptation's 5-minute time constant).
    for _ in range(600):
        extractor.learn(1.0, adapt=True)
    cues = extractor.cues()
    assert cues is not None and abs(cues.rssi_change_db) < 0.3


def test_room_extractor_calibrates_each_link_on_its_first_seconds_then_stops() -> None:
    room = RoomCueExtractor(RATE_HZ, calibration_s=5.0)
    streams = [Stream("a-b"), Stream("a-c")]
    for _ in range(round(5.5 * RATE_HZ)):
        for stream in streams:
            room.push(stream.sample())
    assert not room.calibrating("a-b") and not room.calibrating("a-c")
    for _ in range(300):
        for stream in streams:
            room.push(stream.sample(rssi=-56.0))
    cues = room.room(10.0)
    assert cues.links == ("a-b", "a-c")
    assert cues.vectors.shape == (2, N_CUE_FEATURES)
    assert [c.rssi_change_db for c in cues.cues] == [pytest.approx(-6.0), pytest.approx(-6.0)]
    room.recalibrate()
    assert room.calibrating("a-b")


def test_a_calibration_shorter_than_a_reference_needs_still_makes_every_link_ready() -> None:
    # detector.calibration_s: 2 (shorter than the 4 s a reference needs) once left the sensing path on
    # the motion detector for good: no link ever became ready, so nothing could say the room was empty.
    room = RoomCueExtractor(RATE_HZ, calibration_s=2.0)
    streams = [Stream("a-b"), Stream("a-c")]
    for _ in range(round(6.0 * RATE_HZ)):
        for stream in streams:
            room.push(stream.sample())
    assert room.room(6.0).links == ("a-b", "a-c")


def test_a_room_of_links_read_together_gives_each_link_its_own_cues() -> None:
    # The room's spectra are computed in one go for links whose windows share a shape; a link with
    # three pairs, one that lost packets and one beating at 9 Hz must each read as they do alone.
    streams = [Stream("a-b"), Stream("a-c", pairs=3), Stream("a-d")]
    extractors = [LinkCueExtractor(s.link, RATE_HZ) for s in streams]
    for step in range(800):
        for stream, extractor in zip(streams, extractors, strict=True):
            beating = stream.link == "a-d" and step >= 600  # after the empty room was learnt
            modulation = 0.05 * math.cos(2 * math.pi * 9.0 * step / RATE_HZ) if beating else 0.0
            sample = stream.sample(modulation=modulation)
            if stream.link == "a-c" and step % 7 == 0:
                sample = dataclasses.replace(sample, valid=False)
            extractor.push(sample)
        if step % 100 == 99 and step < 600:
            for extractor in extractors:
                extractor.learn(1.0)
    together = link_cues(extractors)
    for extractor, cues in zip(extractors, together, strict=True):
        alone = extractor.cues()
        assert cues is not None and alone is not None and cues.ready
        np.testing.assert_allclose(cues.doppler, alone.doppler, rtol=1e-6)
        assert (cues.beat, cues.profile_change, cues.rssi_change_db) == pytest.approx(
            (alone.beat, alone.profile_change, alone.rssi_change_db)
        )
    assert int(np.argmax(together[2].doppler[2:])) + 2 == 9
