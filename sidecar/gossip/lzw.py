"""
LZW as Go's C{compress/lzw} writes it with LSB bit order and 8-bit
literals: memberlist's only compression algorithm.  Pure functions.
"""

from __future__ import annotations

_LITERAL_WIDTH = 8
_CLEAR = 1 << _LITERAL_WIDTH
_EOF = _CLEAR + 1
_MAX_WIDTH = 12
_MAX_CODE = (1 << _MAX_WIDTH) - 1


class LZWError(ValueError):
    """
    The input is not a valid LZW stream.
    """


def decompress(data: bytes, limit: int = 10 * 1024 * 1024) -> bytes:
    """
    Decode a Go C{lzw.NewReader(r, lzw.LSB, 8)} stream.

    @param limit: the most bytes to produce; a larger output is an error,
        so a small hostile packet cannot exhaust memory.
    @raise LZWError: on a malformed stream or an output over C{limit}.
    """
    table: list[bytes] = [bytes([n]) for n in range(_CLEAR)] + [b"", b""]
    output = bytearray()
    width, bits, bitCount, position = _LITERAL_WIDTH + 1, 0, 0, 0
    previous: bytes | None = None
    while True:
        while bitCount < width:
            if position >= len(data):
                raise LZWError("stream ends before its end code")
            bits |= data[position] << bitCount
            position += 1
            bitCount += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        bitCount -= width
        if code == _CLEAR:
            del table[_EOF + 1 :]
            width, previous = _LITERAL_WIDTH + 1, None
            continue
        if code == _EOF:
            return bytes(output)
        if code < len(table):
            entry = table[code]
        elif code == len(table) and previous is not None:
            entry = previous + previous[:1]
        else:
            raise LZWError(f"invalid code {code}")
        output += entry
        if len(output) > limit:
            raise LZWError(f"output exceeds {limit} bytes")
        if previous is not None and len(table) <= _MAX_CODE:
            table.append(previous + entry[:1])
        previous = entry
        # Go widens codes once the next entry would not fit, and stops
        # adding entries at 4095 until the writer sends a clear code.
        if len(table) >= (1 << width) and width < _MAX_WIDTH:
            width += 1


def compress(data: bytes) -> bytes:
    """
    Encode as Go's C{lzw.NewWriter(w, lzw.LSB, 8)} does: a clear code
    first, 9- to 12-bit codes, a clear code when the table is full, and the
    end code.
    """
    out = bytearray()
    bits, bitCount = 0, 0
    width = _LITERAL_WIDTH + 1

    def emit(code: int) -> None:
        nonlocal bits, bitCount
        bits |= code << bitCount
        bitCount += width
        while bitCount >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            bitCount -= 8

    table: dict[bytes, int] = {}
    nextCode = _EOF + 1
    emit(_CLEAR)
    current = b""
    for value in data:
        candidate = current + bytes([value])
        if len(candidate) == 1 or candidate in table:
            current = candidate
            continue
        emit(table[current] if len(current) > 1 else current[0])
        table[candidate] = nextCode
        nextCode += 1
        if nextCode > (1 << width) and width < _MAX_WIDTH:
            width += 1
        if nextCode > _MAX_CODE:
            emit(_CLEAR)
            table.clear()
            nextCode, width = _EOF + 1, _LITERAL_WIDTH + 1
        current = bytes([value])
    if current:
        emit(table[current] if len(current) > 1 else current[0])
    emit(_EOF)
    if bitCount:
        out.append(bits & 0xFF)
    return bytes(out)
