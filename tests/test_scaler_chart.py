"""The scaler's chart (``chart_svg``): SVG drawn on the server, no scripts, and in a real browser (Debian's
headless Chromium, a local file, no network) each line is drawn where its values say: checked on the
screenshot's pixels, not only on the text."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from bootstrap_agent.scaler.chart import ALLOCATION_COLOUR, DESIRED_COLOUR, FRAME, READY_COLOUR, chart_svg

CHROMIUM = shutil.which("chromium")
START = 1_800_000_000.0
# Three hours, a point a minute: the first half allocation 50 %, desired 2, ready 1; then 90 %, 6 and 5.
SERIES = [[START + 60 * m, 0.5 if m < 90 else 0.9, 2 if m < 90 else 6, 1 if m < 90 else 5] for m in range(180)]


def test_the_svg_is_self_contained_and_names_its_lines() -> None:
    svg = chart_svg(SERIES, title="Scaler <eo-live>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script" not in svg and "href" not in svg and "url(" not in svg and "on" + "load" not in svg
    assert "&lt;eo-live&gt;" in svg and "<eo-live>" not in svg
    for name in ("allocation", "desired", "ready"):
        assert f'<polyline class="{name}"' in svg
    assert "08:00 UTC" in svg  # START is 2027-01-15 08:00 UTC
    assert "no samples yet" in chart_svg([])
    gap = chart_svg([[START, 0.5, 1, 1], [START + 60, -1, 1, 1], [START + 120, 0.6, 1, 1]])
    assert gap.count('class="allocation"') == 2  # no signal: a gap in that line only


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + left) & 255
            elif filt == 2:
                line[i] = (line[i] + up) & 255
            elif filt == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif filt == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(b for x in range(width) for b in line[x * channels:x * channels + 3]))
        previous = line
    return width, height, rows


def near(rows: list[bytes], x: float, y: float, colour: str, reach: int = 3) -> bool:
    want = bytes.fromhex(colour[1:])
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            px, py = round(x) + dx, round(y) + dy
            if 0 <= py < len(rows) and 0 <= px < len(rows[py]) // 3:
                got = rows[py][px * 3:px * 3 + 3]
                if all(abs(a - b) <= 24 for a, b in zip(got, want, strict=True)):
                    return True
    return False


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("BA_REQUIRE_NETNS") != "1",
                    reason="Debian's chromium is not installed")
def test_chromium_draws_each_line_where_its_values_say(tmp_path: Path) -> None:
    assert CHROMIUM, "Debian's chromium is not installed (.ci/setup installs it)"
    page = tmp_path / "chart.html"
    page.write_text(f'<!doctype html><html><body style="margin:0;background:#fff">{chart_svg(SERIES)}</body></html>')
    shot = Path(os.environ.get("BA_SCREENSHOT_CHART") or tmp_path / "chart.png")
    with tempfile.TemporaryDirectory(prefix="ba-chromium-") as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--force-device-scale-factor=1", f"--user-data-dir={profile}",
             f"--window-size={FRAME.width},{FRAME.height}", f"--screenshot={shot}", page.as_uri()],
            capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    width, height, rows = read_png(shot)
    assert (width, height) == (FRAME.width, FRAME.height)
    end = SERIES[-1][0]
    first, second = FRAME.x(START + 45 * 60, START, end), FRAME.x(START + 135 * 60, START, end)
    expected = [  # (x, value as a fraction of its axis, colour); counts against the top of 6 agents
        (first, 0.5, ALLOCATION_COLOUR), (second, 0.9, ALLOCATION_COLOUR),
        (first, 2 / 6, DESIRED_COLOUR), (second, 6 / 6, DESIRED_COLOUR),
        (first, 1 / 6, READY_COLOUR), (second, 5 / 6, READY_COLOUR),
    ]
    for x, fraction, colour in expected:
        assert near(rows, x, FRAME.y(fraction), colour), (x, fraction, colour)
    # and not where the values are not: the allocation line is not at 90 % during the first half
    assert not near(rows, first, FRAME.y(0.9), ALLOCATION_COLOUR)
    assert not near(rows, second, FRAME.y(2 / 6), DESIRED_COLOUR)


def test_the_dashboard_section_escapes_what_it_shows() -> None:
    from bootstrap_agent.scaler.report import html_section

    report = {"leader": "master-<a>", "desired_set": 3, "holding_until": START + 300, "pending_removals": ["i-1"],
              "intent": None, "decisions": [{"at": START, "action": "none", "reason": "manual_scale",
                                             "detail": "desired is 3 <script>", "signals": {"allocation": 0.5,
                                                                                           "desired": 3, "ready": 2}}]}
    html = html_section(report, chart_svg(SERIES))
    assert "<script" not in html and "&lt;script&gt;" in html and "master-&lt;a&gt;" in html
    assert "held off until 08:05 UTC: manual scale seen" in html and "<svg" in html
    assert "none manual_scale: desired is 3 &lt;script&gt; [allocation 50%, desired 3, ready 2]" in html
