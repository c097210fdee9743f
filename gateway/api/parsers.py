"""The API's JSON parser: DRF's, refusing with 400 (not a 500) the bodies that cannot become
Python data the rest of Mailgate can use."""

import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus two refusals: nesting too deep for the decoder's recursion
    (``[[[[…`` 100,000 deep), and a lone surrogate (``"\\ud800"``), which JSON can spell but no
    database column, file or UTF-8 response can hold."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ParseError(
                "JSON parse error - the body holds a lone surrogate (\\ud800-\\udfff), "
                "which is not a character."
            ) from None
        return data
