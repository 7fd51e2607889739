"""``eventbus emit``: one event from the command line, or a file of them."""

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..client import DEFAULT_TIMEOUT, read_event_lines
from ..client.calls import emit_fields
from ..errors import EventbusError, InvalidEventIdError, ProtocolError
from ..names import validate_event_id
from ..plural import counted
from ..protocol.codec import DEFAULT_WAIT
from ..protocol.event import ordering_of
from .app import JsonOption, app, client_for, complete_events, reported
from .values import duration, parse_arg, parse_kw

if TYPE_CHECKING:
    from datetime import datetime


@app.command()
def emit(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Argument(
        help="The event id, e.g. user_created.", autocompletion=complete_events)] = None,
    items: Annotated[list[str] | None, typer.Argument(
        help="Keyword arguments as KEY=text, KEY:=JSON, KEY=@file or KEY:=@file items, as "
        "--kw takes them.", show_default=False)] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", help="A positional value: text, :=JSON, @file or :=@file. Repeatable.")] = None,
    kw: Annotated[list[str] | None, typer.Option(
        "--kw", help="KEY=text, KEY:=JSON, KEY=@file or KEY:=@file. Repeatable.")] = None,
    file: Annotated[str | None, typer.Option(
        "--file", help='Emit each line of this file (- for stdin): {"event", "args", "kwargs"}.'
    )] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until every delivery has finished; exit 1 if any failed.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.001, help="With --wait: give up waiting after this many seconds "
        "(default 60).")] = None,
    require_listener: Annotated[bool, typer.Option(
        "--require-listener", help="Refuse the event (exit 1) if no listener matches it.")
    ] = False,
    no_check: Annotated[bool, typer.Option(
        "--no-check", help="Skip the check of the arguments against the listeners' "
        "signatures; a listener that cannot take them then fails when it runs.")] = False,
    delay: Annotated[str | None, typer.Option(
        "--delay", help="Run the deliveries this long from now: 90s, 10m, 2h or 1d.",
        show_default=False)] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="Run the deliveries at this time: ISO 8601, e.g. 2026-12-02T09:00 "
        "(local time without an offset); a time past runs now.", show_default=False)] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="A dedupe key: a repeat within the daemon's dedupe_window is answered "
        "as the first was and queues nothing, so a retried emit never runs twice.",
        show_default=False)] = None,
    priority: Annotated[str | None, typer.Option(
        "--priority", help="high, normal or low: within each listener's lane, higher runs "
        "first.", show_default=False)] = None,
    order_key: Annotated[str | None, typer.Option(
        "--order-key", help="An order key (e.g. user:42): per listener, the deliveries of one "
        "key run one at a time, in emit order.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Emit nothing: say which listeners would get the event and whether "
        "each takes its arguments (exit 1 if one would refuse them).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send an event to the daemon; return once it is accepted (with --wait, once handled).

    Example: eventbus emit user_created email=ada@example.com admin:=true --wait
    """
    if priority is not None or order_key is not None:
        try:
            ordering_of(priority, order_key)
        except ProtocolError as exc:
            hint = "--priority" if "priority" in exc.problem else "--order-key"
            raise typer.BadParameter(exc.problem.replace('"', ""), param_hint=hint) from None
    if file is not None:
        if (event is not None or items or arg or kw or wait or require_listener or dry_run
                or priority or order_key):
            raise typer.BadParameter("give either EVENT with --arg/--kw/--wait/--dry-run/"
                                     "--priority/--order-key, or --file (each line may carry "
                                     '"priority" and "order_key")', param_hint="--file")
        _emit_file(ctx, file, as_json, check=not no_check)
        return
    if timeout is not None and not wait:
        raise typer.BadParameter("--timeout goes with --wait", param_hint="--timeout")
    if dry_run and wait:
        raise typer.BadParameter("--dry-run emits nothing to wait for", param_hint="--wait")
    if delay is not None and at is not None:
        raise typer.BadParameter("give --delay or --at, not both", param_hint="--at")
    if (delay is not None or at is not None) and wait:
        raise typer.BadParameter("--wait goes with an emit that runs now", param_hint="--wait")
    seconds_later = None if delay is None else duration(delay, "--delay", "delay")
    when = None if at is None else _time(at)
    if event is None:
        raise typer.BadParameter("give the event id to emit, or --file", param_hint="EVENT")
    with reported(as_json):
        try:
            validate_event_id(event)
        except InvalidEventIdError as exc:
            raise typer.BadParameter(str(exc), param_hint="EVENT") from None
        args = [parse_arg(value) for value in arg or ()]
        kwargs = dict(parse_kw(value) for value in [*(kw or ()), *(items or ())])
        seconds = timeout or DEFAULT_WAIT
        with client_for(ctx, seconds + 30 if wait else DEFAULT_TIMEOUT) as client:
            # The wire document, not EmitResult: decoding would load msgspec, which costs
            # this command's start-up more than the whole reply.
            result: dict[str, Any] = client.call("emit", **emit_fields(
                event, args, kwargs, wait=seconds if wait else None,
                require_listener=require_listener, check=not no_check, dry_run=dry_run,
                delay=seconds_later, at=when, key=key, priority=priority,
                order_key=order_key))
    if dry_run:
        _show_dry_run(result, as_json)
        return
    deliveries, results = result["deliveries"], result.get("results")
    if as_json:
        typer.echo(json.dumps(result))
    elif result.get("duplicate"):
        typer.echo(f"{event}: a duplicate of an emit already accepted with key {key!r} "
                   f"({counted(deliveries, 'delivery')} then); nothing queued now")
    elif "due" in result and deliveries:
        from datetime import datetime

        due = datetime.fromisoformat(result["due"]).astimezone()
        typer.echo(f"{event}: {counted(deliveries, 'delivery')} scheduled for "
                   f"{due:%Y-%m-%d %H:%M:%S %z}")
    elif results is None:
        typer.echo(f"{event}: {counted(deliveries, 'delivery')} queued")
    else:
        typer.echo(f"{event}: {counted(deliveries, 'delivery')}")
        for item in results:
            outcome = "ok" if item["ok"] else f"failed: {item['error']}" if item["ok"] is False \
                else f"unfinished: {item['error']}"
            if item["ok"] is False:  # where to look next
                outcome += (f" (delivery {item['delivery']}: `eventbus queue show "
                            f"{item['delivery']}` has its traceback)")
            typer.echo(f"  {item['listener']}: {outcome}")
    if result.get("volatile"):
        typer.echo("warning: this daemon keeps its queue in memory: a restart before then "
                   "loses these deliveries (a [journal] in eventbus.toml keeps them)", err=True)
    if not deliveries and not result.get("duplicate"):
        close = result.get("suggestion")
        hint = f"; did you mean {close!r}?" if close else ""
        typer.echo(f"warning: no listener matches {event!r}; the daemon counted it as "
                   f"unrouted{hint}", err=True)
    if results is not None and not all(item["ok"] for item in results):
        raise typer.Exit(1)



def _time(text: str) -> "datetime":
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time: give ISO 8601, such as "
                                 "2026-12-02T09:00 (local time) or 2026-12-02T09:00+01:00",
                                 param_hint="--at") from None
    try:
        return moment if moment.tzinfo is not None else moment.astimezone()
    except (ValueError, OverflowError):  # the edge of the calendar: no time zone there
        raise typer.BadParameter(f"{text!r} is out of range: give a time within a year from "
                                 "now", param_hint="--at") from None


def _show_dry_run(result: dict[str, Any], as_json: bool) -> None:
    found = result["listeners"]
    if as_json:
        typer.echo(json.dumps(result))
    elif not found:
        typer.echo(f"{result['event_id']} would reach no listener (it would count as unrouted)")
    else:
        typer.echo(f"{result['event_id']} would reach {counted(len(found), 'listener')}:")
        for item in found:
            listener = f"{item['listener']}{item['signature'] or ''}"
            why = "takes it" if item["takes"] else (item["problem"] or "").removeprefix(listener)
            typer.echo(f"  {listener}: {why.lstrip(': ')}")
    if any(not item["takes"] and item["check"] == "reject" for item in found):
        raise typer.Exit(1)


def _emit_file(ctx: typer.Context, file: str, as_json: bool, *, check: bool) -> None:
    with reported(as_json):
        if file == "-":
            lines, numbers = read_event_lines(sys.stdin.buffer, "stdin")
        else:
            try:
                with open(file, "rb") as stream:
                    lines, numbers = read_event_lines(stream, file)
            except OSError as exc:
                raise EventbusError(f"cannot read {file}: {exc.strerror}") from None
        with client_for(ctx) as client:
            if sys.stderr.isatty() and not as_json:
                from .render import progress_bar

                with progress_bar(len(lines), "emitting") as advance:
                    result = client.emit_lines(lines, progress=advance, check=check)
            else:
                result = client.emit_lines(lines, check=check)
    summary = {"events": result.total, "accepted": result.accepted,
               "deliveries": result.deliveries, "unrouted": result.unrouted,
               "duplicates": result.duplicates}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        repeats = f", {counted(result.duplicates, 'duplicate')}" if result.duplicates else ""
        typer.echo(f"{result.accepted} of {counted(result.total, 'event')} accepted: "
                   f"{counted(result.deliveries, 'delivery')} queued, {result.unrouted} unrouted"
                   f"{repeats}")
    if result.error is not None:
        error, index = result.error, result.error.details.get("index")
        message = error.message
        if message.startswith("event ") and " of the batch: " in message:
            message = message.partition(" of the batch: ")[2]  # the line number says which
        said = (f"line {numbers[index]}: {message} [{error.code}]"
                if isinstance(index, int) and 0 <= index < len(numbers) else str(error))
        keyed = any(b'"key"' in line for line in lines)
        again = (" (lines that carry a key may simply all be sent again: repeats are answered "
                 "as duplicates and queue nothing)" if keyed else "")
        typer.echo(f"error: {said}; {_not_accepted(result.rejected, numbers)}{again}",
                   err=True)
        raise typer.Exit(1)


def _not_accepted(rejected: tuple[tuple[int, int], ...], numbers: list[int]) -> str:
    """Which lines of the file to emit again, exactly: the accepted ones must not be."""
    if len(rejected) == 1 and rejected[0][1] == len(numbers):
        return (f"line {numbers[rejected[0][0]]} and the lines after it were not accepted; "
                "emit them again from there")
    spans = ", ".join(f"{numbers[start]}" if stop - start == 1
                      else f"{numbers[start]}-{numbers[stop - 1]}" for start, stop in rejected)
    return (f"lines {spans} were not accepted (the others were); emit those again, and only "
            "those")
