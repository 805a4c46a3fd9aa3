import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { Badge, Card, Page, Segmented } from "../components";
import { formatTime, prettyJson, severityTone } from "../format";
import { useLive } from "../state";
import type { LiveEvent } from "../state";

const SEVERITIES = ["All", "Information", "Warning", "Error"] as const;
/** The task type of the cluster's node events (a node died, a node took over tasks). */
const NODE_EVENT_TYPE = "EverTask.Node";
type Severity = (typeof SEVERITIES)[number];

function EventRow({ event }: { event: LiveEvent }) {
  const [open, setOpen] = useState(false);
  return (
    <li className={`event sev-${severityTone(event.severity)}`} data-testid="live-event" data-task-id={event.taskId}>
      <button type="button" className="event-head" onClick={() => setOpen(!open)}>
        <span className="time">{formatTime(event.eventDateUtc)}</span>
        <Badge tone={severityTone(event.severity)}>{event.severity}</Badge>
        <span className="kind">{event.kind}</span>
        <span className="event-type">{event.taskType.split(/[.:]/).pop()}</span>
        <span className="event-message">{event.message}</span>
      </button>
      {open && (
        <div className="event-body">
          {event.taskType === NODE_EVENT_TYPE ? (
            <p>
              Node <Link to="/nodes">{event.taskId}</Link> of the cluster
            </p>
          ) : (
            <p>
              Task <Link to={`/tasks/${event.taskId}`}>{event.taskId}</Link> on queue {event.queueName}
              {event.attempt ? `, attempt ${event.attempt}` : ""}
            </p>
          )}
          <pre className="json">{prettyJson(event.taskParameters)}</pre>
          {event.exception && <pre className="exception">{event.exception}</pre>}
          {event.executionLogs && event.executionLogs.length > 0 && (
            <div className="terminal">
              {event.executionLogs.map((log, i) => (
                <div key={i} className="log-line">
                  {log.level} {log.message}
                </div>
              ))}
            </div>
          )}
        </div>
      )}
    </li>
  );
}

export function LivePage() {
  const live = useLive();
  const [severity, setSeverity] = useState<Severity>("All");
  const [paused, setPaused] = useState(false);
  const [frozen, setFrozen] = useState<LiveEvent[]>([]);

  useEffect(() => {
    if (!paused) setFrozen(live.events);
  }, [paused, live.events]);

  const shown = (paused ? frozen : live.events).filter((e) => severity === "All" || e.severity === severity);
  const waiting = paused ? live.events.length - frozen.length : 0;

  return (
    <Page
      title="Live events"
      actions={
        <>
          <Segmented<Severity> label="Severity" value={severity} options={SEVERITIES} onChange={setSeverity} />
          <button type="button" data-testid="live-pause" onClick={() => setPaused(!paused)}>
            {paused ? `Resume${waiting > 0 ? ` (${waiting} new)` : ""}` : "Pause"}
          </button>
          <button type="button" data-testid="live-clear" onClick={live.clear}>
            Clear
          </button>
        </>
      }
    >
      <Card>
        <div className="live-status" data-testid="live-status">
          {!live.available
            ? "Live events are not available in this mode (read-only monitor); pages refresh by polling."
            : live.connected
              ? "Connected: events appear as they happen."
              : "Disconnected: reconnecting; pages refresh by polling meanwhile."}
          {live.dropped > 0 && ` ${live.dropped} events were dropped because this browser fell behind.`}
        </div>
        <ul className="events">
          {shown.map((event) => (
            <EventRow key={event.seq} event={event} />
          ))}
          {shown.length === 0 && <li className="muted">No events yet. Dispatch a task to see it here.</li>}
        </ul>
      </Card>
    </Page>
  );
}
