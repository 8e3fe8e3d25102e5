"""Hypothesis strategies for keyword texts and patterns: evasions, separators, digit variants,
traditional characters and row breaks, so that normalization and boundaries are exercised."""

from __future__ import annotations

from hypothesis import strategies as st

CHARS = list("赌场百家乐六合彩一十統賭場樂号acsinovjlAC016 *.-_|/·~\u200b\u00adＡｃ＊０①⑩㈠¹ß…\n")
text_st = st.text(alphabet=st.sampled_from(CHARS), max_size=30)
pattern_st = st.text(alphabet=st.sampled_from(CHARS), min_size=1, max_size=4)
