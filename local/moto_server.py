"""moto server for the local stack, with EventBridge's TestEventPattern answered.

moto 5.2.5 leaves TestEventPattern unimplemented (it answers an empty 200, which the SDKs
read as "no match"). This launcher answers it with moto's own event pattern matcher, the one
moto routes PutEvents to rules with, and checks the event's envelope as EventBridge does.
Everything else is moto, unchanged: `python local/moto_server.py -H HOST -p PORT`.
"""

import json
import sys

from moto.events import models, responses
from moto.events.exceptions import ValidationException
from moto.server import main

# The fields EventBridge requires of a test event.
REQUIRED = ("id", "account", "source", "time", "region", "resources", "detail-type")


def test_event_pattern(self):
    pattern = models.EventPatternParser(self._get_param("EventPattern")).parse()
    try:
        event = json.loads(self._get_param("Event") or "")
    except ValueError:
        raise ValidationException("Parameter Event is not valid.")
    if not isinstance(event, dict) or any(field not in event for field in REQUIRED):
        raise ValidationException("Parameter Event is not valid.")
    matched = models.EventPattern(None, pattern).matches_event(event)
    return json.dumps({"Result": matched}), self.response_headers


responses.EventsHandler.test_event_pattern = test_event_pattern

if __name__ == "__main__":
    main(sys.argv[1:])
