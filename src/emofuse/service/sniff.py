"""What an upload is, from its first bytes (magic numbers), never from its name or declared type.

`sniff` recognises the containers emofuse decodes: RIFF/WAVE, FLAC, Ogg, AIFF, MP3 (ID3 tag or an MPEG
audio frame header), ADTS AAC, ISO base media (MP4, M4A, MOV: ``ftyp``), EBML (Matroska, WebM), FLV
and AVI. Anything else is refused by the service (415) before any decoder sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: bytes of the upload `sniff` needs
HEAD_BYTES = 64

#: the formats accepted, as named in error messages
ACCEPTED = "WAV, FLAC, Ogg (Vorbis/Opus), AIFF, MP3, AAC, MP4/M4A/MOV, Matroska/WebM, FLV, AVI"


@dataclass(frozen=True)
class MediaType:
    """A recognised container: its name, the file extension the upload is saved with, and whether it
    may hold video (``kind`` "video": MP4/MOV/MKV/WebM/FLV/AVI may hold pictures; "audio" cannot)."""

    name: str
    extension: str
    kind: str


_ISO_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def sniff(head: bytes) -> MediaType | None:
    """The container of a file starting with ``head`` (its first `HEAD_BYTES` bytes), or None."""
    if len(head) >= 12 and head[:4] == b"RIFF":
        if head[8:12] == b"WAVE":
            return MediaType("wav", ".wav", "audio")
        if head[8:12] == b"AVI ":
            return MediaType("avi", ".avi", "video")
        return None
    if head[:4] == b"fLaC":
        return MediaType("flac", ".flac", "audio")
    if head[:4] == b"OggS":
        return MediaType("ogg", ".ogg", "audio")
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return MediaType("aiff", ".aiff", "audio")
    if head[:3] == b"ID3":
        return MediaType("mp3", ".mp3", "audio")
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _ISO_AUDIO_BRANDS:
            return MediaType("m4a", ".m4a", "audio")
        if brand == b"qt  ":
            return MediaType("mov", ".mov", "video")
        return MediaType("mp4", ".mp4", "video")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return MediaType("webm" if b"webm" in head else "matroska", ".webm" if b"webm" in head else ".mkv", "video")
    if head[:3] == b"FLV" and len(head) >= 4 and head[3] == 1:
        return MediaType("flv", ".flv", "video")
    return _mpeg_audio(head)


def _mpeg_audio(head: bytes) -> MediaType | None:
    """An MPEG audio frame (MP3 without a tag) or an ADTS AAC frame at the start of ``head``."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 0x3, (head[1] >> 1) & 0x3
    if layer == 0:  # ADTS: sync 0xFFF, layer bits 00
        if head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0xF < 13:
            return MediaType("aac", ".aac", "audio")
        return None
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x3
    if version == 1 or bitrate in (0, 15) or rate == 3:  # reserved values: not a frame header
        return None
    return MediaType("mp3", ".mp3", "audio")


def describe_head(head: bytes) -> str:
    """The first bytes of an upload, for an error message (printable ASCII kept, the rest as hex)."""
    if not head:
        return "the upload is empty"
    shown = head[:12]
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in shown)
    return f"it starts with bytes {shown.hex(' ')} ({text!r})"
