"""Colour arithmetic for the brand: WCAG contrast, and an accent readable in dark mode."""

from __future__ import annotations

import colorsys

#: The darkest background dark mode gives the email (body and bands); cards are lighter.
DARK_BACKGROUND = "#15181c"
DARK_CARD = "#22272e"
#: WCAG AA contrast for body text.
READABLE = 4.5

RGB = tuple[int, int, int]


def parse_hex(colour: str) -> RGB:
    """'#c2410c' → (194, 65, 12)."""
    digits = colour.lstrip("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def to_hex(rgb: RGB) -> str:
    """(194, 65, 12) → '#c2410c'."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""
    linear = [
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb)
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two hex colours, from 1 (same) to 21 (black on white)."""
    light, dark = sorted((luminance(parse_hex(first)), luminance(parse_hex(second))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def dark_variant(accent: str, background: str = DARK_CARD) -> str:
    """The accent, lightened just enough (same hue) to read on dark mode's `background`."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*(v / 255 for v in parse_hex(accent)))
    while lightness < 1:
        red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
        candidate = to_hex((round(red * 255), round(green * 255), round(blue * 255)))
        if contrast(candidate, background) >= READABLE:
            return candidate
        lightness = min(1.0, lightness + 0.02)
    return "#ffffff"
