"""What happened, by kind: the English words of every "what happened" the pack says, in one table.

An error (and a route's refusal) carries a ``messages.Message``: one of these kinds plus its facts.
The English line is made from the kind's words here (``messages.english``); the node sends the
kind and facts to the browser, which words them in the UI language from the locale files, whose
English part is generated from this table (``python tests/locale_catalog.py``). A kind's locale
key is derived from its name (``BAD_KEY`` -> ``what.badKey``).

``{name}`` is a fact the raise site gives (a provider's words, a path, a number, or another
message, worded in turn) or an environment variable's name (``messages.CONSTANTS``). Some kinds
are fragments another message's words take as a fact (a network failure's reason, a subject).
The words are the same on every surface: what to do is the advice's (``advice.py``).

Standard library only: imported when ComfyUI loads the pack.
"""

from __future__ import annotations

import enum

__all__ = ["What"]

_NOTHING_SENT = "Nothing was sent, so nothing was charged:"
_KEEPS_RUNNING = "the task keeps running at API in One."
_LOCAL = (
    "This is a local network problem (connection, DNS, firewall, proxy or TLS), not an API error"
)
_UNCERTAIN = "so the task may exist and may have been charged"
_TASK_ID_RULE = "a task id is a short token of letters, digits, '-', '_' and '.'."
_RESULT_FILE = "The result file {url}"


@enum.unique
class What(enum.Enum):
    """Every kind of "what happened"; each member's value is its English words."""

    # -- the errors' own defaults (api/errors.py) --------------------------------------------------
    REQUEST_FAILED = "The Grok Imagine request failed."
    NO_KEY = "No API in One key is set."
    KEY_NOT_ACCEPTED = "API in One did not accept the API key."
    TOO_FEW_CREDITS = "Your API in One account has too few credits for this request."
    RATE_LIMITED = "API in One is rate limiting requests: wait a little."
    INVALID_REQUEST = "The request is not valid."
    TASK_NOT_FOUND = (
        "The task was not found at API in One: check the task id and that the key is the one "
        "that created it."
    )
    SERVER_ERROR = "API in One had a server error."
    NO_NETWORK = (
        "Could not reach API in One: this is a local network problem (DNS, firewall, proxy or "
        "TLS); check the connection."
    )
    UNCERTAIN_CREATE = (
        "A create was sent but its answer was lost, so the task may exist and may have been "
        "charged; it is not sent again automatically."
    )
    BAD_RESPONSE = (
        "API in One sent an answer this client cannot read: try again; if it persists, check "
        "{base_url_env} and report it."
    )
    DOWNLOAD_FAILED = "Downloading a result file failed."
    NOT_AN_IMAGE = "The result file is not an image (JPEG, PNG, WEBP or GIF)."
    TOO_LARGE = "The result file is larger than the download limit."
    RESULT_EXPIRED = (
        "The result file is no longer available (result URLs expire after hours or days)."
    )

    # -- a task that failed, timed out or was cancelled -------------------------------------------
    TASK = "Task {task_id}"
    THE_TASK = "The task"
    TASK_FAILED = "{task} failed: {reason}. Failed tasks are not charged."
    TASK_FAILED_NO_REASON = (
        "{task} failed (the provider gave no reason). Failed tasks are not charged."
    )
    MODERATION = (
        "{task} was refused by the provider's content policy ({reason}). Failed tasks are not "
        "charged; rephrase the prompt, since the same prompt will be refused again."
    )
    MODERATION_NO_REASON = (
        "{task} was refused by the provider's content policy. Failed tasks are not charged; "
        "rephrase the prompt, since the same prompt will be refused again."
    )
    WAITED = " after {seconds} s"
    TIMEOUT_UNREAD = (
        "Stopped waiting for task {task_id}{waited} because its status could not be read: "
        "{reason}. The task keeps running at API in One."
    )
    TIMEOUT = "Stopped waiting for task {task_id}{waited}; " + _KEEPS_RUNNING
    TIMEOUT_NO_TASK = "Stopped waiting{waited} before a task id arrived."
    READ_STILL_ARRIVING = (
        "a status read was still arriving when the wait ran out (the API or a proxy on the way "
        "answers extremely slowly)"
    )
    CANCELLED = "Cancelled while waiting for task {task_id}; " + _KEEPS_RUNNING
    CANCELLED_BEFORE_CREATE = "Cancelled before any task was created; nothing was charged."
    CANCELLED_ALL = "Cancelled; every task keeps running at API in One."
    SUCCEEDED_WITHOUT_FILES = (
        "Task {task_id} is reported succeeded but API in One listed no result files; if it "
        "persists, report it."
    )

    # -- API refusals (api/http_errors.py) --------------------------------------------------------
    SAID = ": {said}"
    """The server's own words after a colon."""
    SAID_IN_BRACKETS = " ({said})"
    HTTP_STATUS = " (HTTP {status}{said})"
    KEY_REFUSED = (
        "API in One did not accept the API key (HTTP 401{said}). The key in use comes from "
        "{key_source}."
    )
    KEY_FORBIDDEN = (
        "API in One refused this key access (HTTP 403{said}): check the key's permissions in "
        "your API in One dashboard, or use another key."
    )
    NO_CREDITS = (
        "Not enough API in One credits for this request (HTTP 402{said}); text-to-image costs 5 "
        "credits, upscale 12."
    )
    KEY_LIMIT = (
        "This API key has reached its usage limit (HTTP 433, sub-key limit{said}): raise the "
        "key's limit in your API in One dashboard or use another key."
    )
    MAINTENANCE = "API in One is under maintenance (HTTP 455{said})."
    SWITCHED_OFF = (
        "The provider has switched this feature off for now (HTTP 505{said}): try again later or "
        "ask API in One support."
    )
    NOT_FOUND_CREATE = (
        "API in One answered {status} Not Found for the create request{said}: check that "
        "{base_url_env} ({base_url}) is the API's address."
    )
    NOT_FOUND_STATUS = (
        "API in One answered {status} Not Found for the status request{said}: check that "
        "{base_url_env} ({base_url}) is the API's address."
    )
    UNKNOWN_SOURCE_TASK = (
        "API in One does not know the task {task_id} to upscale{said}: check the id (it must be a "
        "finished text-to-image task made with this same key)."
    )
    UNKNOWN_TASK = (
        "API in One does not know the task {task_id}{said}: check the id, and that the key in use "
        "is the one that created it (tasks belong to one account)."
    )
    REJECTED = "API in One rejected the request (HTTP {status}{said})."
    LOST_AT_GATEWAY = (
        "A create was sent but its answer was lost: a gateway in front of API in One answered it "
        "with HTTP {status}{said}, " + _UNCERTAIN + ". It is not sent again automatically."
    )
    SERVER_ERROR_CREATE = (
        "API in One had a server error (HTTP {status}{said}) (nothing was created, so nothing was "
        "charged); if it persists, check the API in One status page."
    )
    SERVER_ERROR_READ = (
        "API in One had a server error (HTTP {status}{said}); if it persists, check the API in "
        "One status page."
    )
    UNEXPECTED_STATUS = (
        "API in One answered HTTP {status} unexpectedly{said}: check {base_url_env} ({base_url}) "
        "and try again."
    )
    RETRY_IN = "retry in {seconds} s"
    RETRY_IN_A_MINUTE = "retry in a minute"
    RATE_LIMITED_CREATE = (
        "API in One is rate limiting new tasks (HTTP 429{said}); {when}. Nothing was created or "
        "charged."
    )
    RATE_LIMITED_READ = "API in One is rate limiting requests (HTTP 429{said}); {when}."
    REDIRECTED = (
        "API in One answered with a redirect (HTTP {status}) to {target}: set {base_url_env} to "
        "the address the API really lives at."
    )
    ANOTHER_ADDRESS = "another address"

    # -- answers this client cannot read (transport, task_reader, client) --------------------------
    AN_HTML_PAGE = "an HTML page"
    AN_EMPTY_ANSWER = "an empty answer"
    NOT_JSON = "text that is not JSON"
    PLAIN_TEXT = "plain text"
    A_JSON_VALUE = "a JSON {type}"
    CREATE_ANSWER_UNREADABLE = (
        "API in One answered the create request with {answer} (HTTP {status}), so it is unknown "
        "whether the task was created. Check your API in One dashboard; if {base_url_env} is set, "
        "check it points at the API."
    )
    STATUS_ANSWER_UNREADABLE = (
        "API in One answered a status read with {answer} (HTTP {status}): usually a passing "
        "gateway problem; if it persists, check {base_url_env}."
    )
    STATUS_TOO_DEEP = (
        "API in One sent a task status too deeply nested or too large to read: try again; if it "
        "persists, report it."
    )
    STATUS_UNREADABLE = (
        "API in One sent a task status this client cannot read ({type}): try again; if it "
        "persists, report it."
    )
    STATUS_NOT_AN_OBJECT = (
        "API in One answered a task status read with {answer} instead of a JSON object: try "
        "again; if it persists, check {base_url_env}."
    )
    STATUS_EMPTY = (
        "API in One sent a task status with no status and no results in it: try again; if it "
        "persists, report it."
    )
    STATUS_WITHOUT_ID = "API in One sent a task status without a task id: try again."
    CREATE_WITHOUT_ID = (
        "API in One accepted the create request but its answer names no task id, " + _UNCERTAIN
        + ": check your API in One dashboard."
    )  # fmt: skip
    CREATE_ODD_ID = (
        "API in One answered the create request with a task id this client cannot use safely, "
        + _UNCERTAIN + ": check your API in One dashboard."
    )  # fmt: skip
    RESULT_URL_EMPTY = "The result URL is empty: read the task again."
    CLIENT_CLOSED = "This client is closed: make a new one to download."

    # -- no answer (api/http_errors.py's causes) --------------------------------------------------
    CAUSE_PROXY = (
        "the HTTP(S) proxy failed or refused the connection; check HTTPS_PROXY, HTTP_PROXY and "
        "NO_PROXY"
    )
    CAUSE_DNS = "DNS lookup failed: the API's host name could not be resolved"
    CAUSE_NOT_HTTPS = "the server does not speak HTTPS"
    CAUSE_TLS = (
        "the TLS certificate check failed; if a proxy or antivirus inspects HTTPS, point "
        "REQUESTS_CA_BUNDLE at its CA certificate"
    )
    CAUSE_REFUSED = "the connection was refused"
    CAUSE_NOT_OPENED = "the connection could not be opened"
    CAUSE_CONNECT_TIMEOUT = "no connection within {seconds} s"
    CAUSE_READ_TIMEOUT = "it did not answer within {seconds} s"
    CAUSE_CUT_OFF = "the connection closed before the answer was complete"
    CAUSE_RESET = "the connection was reset"
    CAUSE_BAD_URL = "the API address is not a valid URL; check {base_url_env}"
    CAUSE_OTHER = "network error {name}"
    UNREACHABLE_CREATE = (
        "Could not reach API in One at {origin} to create the task ({reason}); nothing was sent, "
        "so nothing was charged. " + _LOCAL + ": check it."
    )
    LOST_CREATE = (
        "A create was sent but its answer was lost ({reason}), " + _UNCERTAIN + ". It is not "
        "sent again automatically."
    )
    STATUS_READ_STALLED = (
        "API in One at {origin} took the task status request but {reason}: it is slow or stalled "
        "right now; " + _KEEPS_RUNNING
    )
    UNREACHABLE_STATUS = (
        "Could not reach API in One at {origin} to read the task status ({reason}). " + _LOCAL
        + ": check it; " + _KEEPS_RUNNING
    )  # fmt: skip
    NOT_HTTPS_CREATE = (
        "The server at {origin} does not speak HTTPS (it answered in plain HTTP): did you mean "
        "{plain}? Set {base_url_env} to the address the API really has. Nothing was sent, so "
        "nothing was charged."
    )
    NOT_HTTPS_READ = (
        "The server at {origin} does not speak HTTPS (it answered in plain HTTP): did you mean "
        "{plain}? Set {base_url_env} to the address the API really has."
    )

    # -- the key and the settings (api/config.py) -------------------------------------------------
    A_SPACE = "a space or line break"
    NOT_ASCII = "a character that is not plain ASCII (U+{code})"
    KEY_UNSENDABLE = "The API key from {key_source} contains {problem}, so it cannot be sent."
    NOT_POSITIVE_SECONDS = "{name} must be more than 0 seconds."
    DOWNLOAD_CAP_NOT_POSITIVE = "max_download_bytes must be positive."
    BASE_URL_NOT_HTTP = (
        "The API base URL {url} is not an http(s) address: fix {base_url_env} (default "
        "{default_url})."
    )
    BASE_URL_EXTRAS = (
        "The API base URL must not carry credentials, a query or a fragment: fix {base_url_env} "
        "(default {default_url})."
    )
    KEY_NOT_TEXT = "The key must be text."
    KEY_EMPTY = "The key to store is empty: paste the key from your API in One dashboard."
    KEY_CONTAINS = "The key contains {problem}: check that nothing else was copied along with it."
    KEY_TOO_SHORT = "That key is too short (at least {count} characters): copy it again."
    KEY_TOO_LONG = "That key is too long (at most {count} characters): copy the key alone."
    KEY_FILE_IS_A_FOLDER = "The API key file {path} is a folder, not a file: remove it."
    KEY_FILE_UNREADABLE = (
        "The API key file {path} could not be read ({reason}): fix its permissions."
    )
    KEY_FILE_TOO_LARGE = "The API key file {path} is far too large to hold a key."
    KEY_FILE_NOT_TEXT = "The API key file {path} is not text."
    KEY_FROM_ENV = "environment variable {key_env}"
    KEY_FROM_FILE = "key file {path}"
    KEY_GIVEN_IN_CODE = "given in code"
    THE_KEY_FILE = "the key file {path}"
    A_KEY_FILE = "a key file"
    NO_KEY_ANYWHERE = (
        "No API in One key is set: neither the {key_env} environment variable nor {where} holds "
        "one (keys are at https://apiin.one)."
    )

    # -- the inputs (api/validation.py) -----------------------------------------------------------
    CONTROL_CHARACTER = "an invisible control character ({code})"
    NON_ASCII_CHARACTER = "the non-ASCII character {char}"
    CHARACTER = "the character {char}"
    PROMPT_NOT_TEXT = "The prompt must be text, not {type}."
    PROMPT_EMPTY = "The prompt is empty: describe the image you want."
    PROMPT_TOO_LONG = (
        "The prompt is {length} characters long; Grok Imagine accepts at most {most}. Shorten it "
        "by {over} characters."
    )
    PROMPT_CONTROL = (
        "The prompt contains an invisible control character ({code}) at position {position}: "
        "retype or paste it again as plain text."
    )
    TASK_ID_NOT_TEXT = "The task id must be text, not {type}."
    TASK_ID_EMPTY = (
        "The task id is empty: paste the id of a Grok Imagine task (a node's task_id output or "
        "`grok-imagine tasks` lists them)."
    )
    TASK_ID_TOO_LONG = (
        "The task id is {length} characters long; task ids are short tokens (at most {most}). "
        "Paste only the id, not a URL or a whole log line."
    )
    TASK_ID_CONTAINS = (
        "The task id contains {problem}; " + _TASK_ID_RULE + " Paste only the id, not a URL or a "
        "path."
    )
    TASK_ID_DOTS = "The task id contains '..' or starts with '.'; paste only the id, not a path."
    TOO_MANY_TASK_IDS = "{count} task ids were given; one node takes at most {most}."
    ASPECT_RATIO = (
        "The aspect ratio {value} is not offered; pick one of {choices} (or none for the "
        "provider's default)."
    )

    # -- result files (api/download.py, journal/verify.py) ----------------------------------------
    AN_EMPTY_FILE = "an empty file"
    AN_AVIF = "an AVIF/HEIC image, a format this pack cannot read"
    AN_MP4 = "a video (MP4/MOV)"
    A_WEBM = "a video (WebM/Matroska)"
    AN_AVI = "a video (AVI)"
    A_WEB_PAGE = "an HTML or XML page"
    A_JSON_DOCUMENT = "a JSON document"
    A_PDF = "a PDF document"
    SOMETHING_ELSE = "something that is not a JPEG, PNG, WEBP or GIF image"
    RESULT_NOT_HTTP = (
        "The result address {url} is not an http(s) URL, so it was not fetched: report it; the "
        "task's other files are unaffected."
    )
    RESULT_EMPTY = (
        _RESULT_FILE + " was empty each of the {tries} time(s) it was fetched: the file host has "
        "nothing for this URL. The task is paid; report it, or use Grok Load Task later in case "
        "the file appears."
    )
    DOWNLOAD_GAVE_UP = (
        "Downloading {url} failed {tries} time(s), last: {reason}. This is usually passing "
        "(network or file host); the task is paid and its result is fetched again without "
        "creating a new one."
    )
    HOST_SENT_EMPTY = "the file host sent an empty file"
    HOST_SENT_PART = "only {got} of the {announced} bytes its Content-Length announced arrived"
    HOST_ANSWERED = "the file host answered HTTP {status}"
    HOST_CONNECT_TIMEOUT = "the file host did not accept the connection within {seconds} s"
    HOST_READ_TIMEOUT = "the file host did not answer within {seconds} s"
    HOST_CUT_OFF = "the connection closed before the whole file arrived"
    HOST_TLS = "the TLS certificate check failed (see REQUESTS_CA_BUNDLE)"
    HOST_PROXY = "the HTTP(S) proxy failed (see HTTPS_PROXY / NO_PROXY)"
    HOST_UNREACHABLE = "the file host could not be reached or dropped the connection"
    TOO_MANY_REDIRECTS = _RESULT_FILE + " redirects more than {most} times: report it."
    REDIRECT_NOT_FOLLOWED = (
        _RESULT_FILE + " redirects to an address that is not http(s); it was not followed. Report "
        "it."
    )
    REDIRECT_SCHEME = (
        _RESULT_FILE + " redirects to a {scheme}: address; only http(s) is followed. Report it."
    )
    NO_SCHEME = "no scheme"
    RESULT_GONE = (
        _RESULT_FILE + " is no longer available (HTTP {status}); result URLs expire after hours "
        "or days, so files must be fetched soon after the task ends."
    )
    FILE_HOST_STATUS = "The file host answered HTTP {status} for {url}; if it persists, report it."
    DOWNLOAD_TOO_SLOW = (
        "Downloading {url} took longer than {seconds} s (only {got} bytes arrived): the file "
        "host or the network is very slow."
    )
    RESULT_NOT_IMAGE = (
        _RESULT_FILE + " is {looks_like}, not an image (JPEG, PNG, WEBP or GIF). If this was an "
        "upscale, the provider may have returned a video; the task is paid, so report it rather "
        "than retrying."
    )
    ANNOUNCED = " ({mib} MiB announced)"
    RESULT_TOO_LARGE = (
        _RESULT_FILE + " is larger than the {mib} MiB download limit{announced}; it was not kept. "
        "Raise Settings.max_download_bytes if such files are expected."
    )
    IT = "it"
    FILE_IS_EMPTY = "the file is empty"
    NOT_FOR_PILLOW = "it starts like an image but its bytes are not one Pillow can read"
    UNREADABLE_IMAGE = "{subject} is not an image this pack can read ({reason})"
    NO_MEMORY_TO_DECODE = "it does not fit in memory to decode"
    DAMAGED_IMAGE = "it cannot be decoded, the image data is damaged or cut short ({reason})"
    DECOMPRESSION_BOMB = "{subject} is too large to decode safely ({reason})"
    NO_PIXELS = "{subject} has no pixels ({width}x{height})"
    TOO_MANY_PIXELS = (
        "{subject} is {width}x{height} ({megapixels} megapixels), over the {limit} megapixel "
        "limit; it was not decoded"
    )
    EXPIRED_NOT_KEPT = (
        "The result file is no longer available: the URLs of task {task_id} have expired (file "
        "{number} of {count}{answer}) and the kept copy is not in {folder}, so the images cannot "
        "be fetched again."
    )
    COMMA_HTTP = ", HTTP {status}"
    FILE_NOT_KEPT = "Result file {number} of {count} of task {task_id} was not kept: {reason}"
    FILE_OF_TASK_NOT_KEPT = "Result file {number} of task {task_id} was not kept: {reason}"

    # -- the node's batch of images (nodes/image_tensors.py, nodes/result_images.py) --------------
    IMAGE_OF_TASK = "image {number} of {count} of task {task_id}"
    IMAGE_NUMBER = "image {number} of {count}"
    IMAGE_FILE = "image file {name}"
    THE_IMAGE = "the image"
    NO_IMAGE = "The task finished without any image."
    NO_IMAGES_TO_LOAD = "there are no images to load"
    IMAGE_NEVER_ARRIVED = "the image never arrived"
    COULD_NOT_READ = "{subject} could not be read: {reason}"
    COULD_NOT_DECODE = "{subject} could not be decoded: {reason}"
    COULD_NOT_RESIZE = "{subject} could not be resized to {size}: {reason}"
    DOES_NOT_FIT = "{subject} does not fit in memory"
    BATCH_TOO_LARGE = (
        "{count} images of {size} make {megapixels} megapixels, over the {limit} "
        "megapixel limit for one IMAGE batch"
    )

    # -- the journal and its folders (journal/) ---------------------------------------------------
    TASK_JOURNAL = "task journal"
    KEPT_FILES = "kept-files"
    DETAIL = " ({detail})"
    FILE_IN_THE_WAY = "a file is in the way"
    NOT_WRITABLE = "{name} is not writable"
    LOW_SPACE = "{free} MiB free, {need} MiB needed"
    DISK_FULL = (
        _NOTHING_SENT + " the disk holding the {role} folder {folder} is full{detail}. Free some "
        "space there."
    )
    NOT_A_FOLDER = (
        _NOTHING_SENT + " the {role} folder {folder} cannot be made{detail}. Remove what is in "
        "the way."
    )
    NEWER_JOURNAL = (
        _NOTHING_SENT + " the task journal {folder} was written by a newer version of this "
        "pack{detail}, in a form this version cannot write. Update the pack (kept results still "
        "load meanwhile)."
    )
    JOURNAL_UNREADABLE = (
        _NOTHING_SENT + " the task journal {folder} cannot be opened{detail}. Fix the file's "
        "permissions."
    )
    FOLDER_READ_ONLY = (
        _NOTHING_SENT + " the {role} folder {folder} cannot be written{detail}. Fix its "
        "permissions (or the read-only mount)."
    )
    JOURNAL_AWAY = "The task journal cannot be reached; no request was sent."
    JOURNAL_URL_WRONG = (
        "{source} must be a postgresql:// URL (postgresql://user:password@host:5432/database), "
        "but {found}: fix it, or unset it to use this machine's own journal. No request was sent."
    )
    STARTS_WITH = "it starts with {scheme}"
    HAS_NO_SCHEME = "it has no scheme"
    POSTGRES_AT = "PostgreSQL at {host}:{port}, database {database}"
    DRIVER_MISSING = (
        "{journal_url_env} points at a shared journal ({where}) but the PostgreSQL driver is not "
        "installed in this Python: install the package {driver} into the Python that runs "
        "ComfyUI (the pack's postgres extra), or unset {journal_url_env} to use this machine's "
        "own journal. No request was sent."
    )
    SHARED_JOURNAL_AWAY = (
        "The shared task journal ({where}) cannot be reached while trying to {doing}: {reason}. "
        "No new task was created, so nothing was charged. Start the database (or correct "
        "{journal_url_env}; unset it to use this machine's own journal)."
    )
    SHARED_JOURNAL_REFUSED = (
        "The shared task journal ({where}) cannot be written while trying to {doing}: {reason}. "
        "No new task was created, so nothing was charged. Give its user write access (or correct "
        "{journal_url_env}; unset it to use this machine's own journal)."
    )
    SHARED_JOURNAL_NEWER = (
        "The shared task journal ({where}) was upgraded to schema version {version} by a newer "
        "Grok Imagine pack, which needs every worker at schema {oldest} or later; this pack "
        "writes version {ours}. Update the Grok Imagine pack on this worker. No request was sent."
    )
    DOING_OPEN = "open"
    DOING_CHECK_PAID = "check whether this request was already paid for"
    DOING_RECORD_REQUEST = "record the request before creating it"
    DOING_CHECK_LIMIT = "check the daily credit limit"
    DOING_TAKE_RESERVED = "take a reserved create"
    DOING_RECORD_UNCERTAIN = "record an uncertain create"
    DOING_RESOLVE_UNCERTAIN = "resolve an uncertain create"
    DOING_TAKE_TURN = "take a turn to create a task"
    DOING_READ_TASK = "read a task from the journal"
    DOING_READ_REQUEST = "read a request from the journal"
    DOING_LIST = "list the journal"
    DOING_LIST_UNCERTAIN = "list uncertain creates"
    DOING_COUNT = "count the journal"
    DOING_COUNT_SPENDING = "count today's spending"
    DOING_SAVE_PROGRESS = "save a task's progress"
    DOING_SETTLE_UNSENT = "settle a create that was never sent"
    SETTLED_WHILE_WAITING = (
        "This create was taken over by another process or worker while it waited for its turn "
        "to create; nothing was sent from here."
    )
    ROW_IS = (
        "Journal row {row} is {state}; only an uncertain create (a create whose answer was lost) "
        "can be resolved. `grok-imagine tasks` lists the uncertain ones."
    )
    NO_SUCH_ROW = (
        "Journal row {row} does not exist; only an uncertain create (a create whose answer was "
        "lost) can be resolved. `grok-imagine tasks` lists the uncertain ones."
    )
    TASK_ALREADY_KNOWN = (
        "Task {task_id} is already in the journal (row {row}), so it is not the answer to this "
        "lost create; look for another task id in the dashboard."
    )
    UPSCALE_REQUEST = "upscale of task {source_task_id} (seed {seed}, index {index})"
    PROMPT_REQUEST = 'prompt "{prompt}" (seed {seed}, index {index})'
    UNCERTAIN_ROW = (
        "A create was sent but its answer was lost: the request for the {request} went out at "
        "{when}{reason}, " + _UNCERTAIN + " {credits} credits. It is not sent again "
        "automatically."
    )
    NO_SPENDING_LEDGER = (
        "The task journal {where} cannot count spending yet, so a daily credit limit cannot be "
        "kept with it and nothing was sent: unset the limit, or use this machine's own journal."
    )
    TURN_AFTER_TIMEOUT = (
        "This create's turn under the account's create rate ({create_rate_env}) comes in "
        "{seconds} s, after the task's timeout. Nothing was created or charged."
    )
    CREATE_RATE_INVALID = (
        "{create_rate_env} must be creates per seconds such as 20/10, or off; not {value}."
    )

    # -- the daily credit limit (journal/spend_limit.py) ------------------------------------------
    SPEND_LIMIT = (
        "Daily credit limit reached: spent {spent} of {limit} credits today, this run needs "
        "{need} more, so nothing was sent."
    )
    LIMIT_IN_FILE = "The daily credit limit in {path}"
    LIMIT_NOT_WHOLE = "{where} must be a whole number of credits, not {value}."
    LIMIT_OUT_OF_RANGE = (
        "{where} must be a whole number of credits from 0 to {most} (or empty for no limit); paid "
        "requests are refused until it is fixed."
    )
    SETTINGS_UNREADABLE = "The Grok Imagine settings file {path} cannot be read ({reason})."
    SETTINGS_DAMAGED = "The Grok Imagine settings file {path} is damaged."

    # -- what the pack's routes refuse (nodes/settings_route.py, nodes/panel_routes.py) ----------
    SEND_JSON_LIKE = "Send JSON like {example}."
    SEND_EXAMPLE = "Send {example}."
    EITHER = "{first} or {second}"
    SEND_KEY_AS_JSON = "Send the key as application/json."
    SEND_JSON = "Send application/json."
    REQUEST_TOO_LARGE = "Request too large."
    KEY_NOT_WRITTEN = "Could not write the key file: {reason}."
    NOT_READ_OR_WRITTEN = "Could not read or write: {reason}."
    IO_ERROR = "I/O error"
    WHOLE_NUMBER_PARAM = '"{name}" must be a whole number from {low} to {high}.'
    NO_SUCH_FILE = "No such file."
    NO_SUCH_KEPT_FILE = "No such kept file."
    LIMIT_BODY = "Send JSON like {example} ({no_limit} for no limit)."
    LIMIT_VALUE = "The daily limit must be a whole number of credits, 0 to {most}."
    ENTRY_NOT_A_ROW = '"entry" must be a journal row number; send {example}.'
    NOT_A_PICTURE = "That kept file cannot be shown as a picture."
    PANEL_OWN_JOURNAL_ONLY = (
        "The panel lists this machine's own journal only; {where} is not listed yet (use "
        "`grok-imagine tasks`)."
    )
