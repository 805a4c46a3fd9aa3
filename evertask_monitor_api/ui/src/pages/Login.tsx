import { useState } from "react";
import type { FormEvent } from "react";
import { ApiError } from "../api";
import { useSession } from "../state";

export function LoginPage() {
  const { login } = useSession();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username, password);
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) {
        setError(`Too many failed attempts; try again in ${e.retryAfter ?? 60} s.`);
      } else if (e instanceof ApiError && e.status === 401) {
        setError("Invalid username or password.");
      } else {
        setError(e instanceof Error ? e.message : String(e));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login">
      <form className="card login-card" onSubmit={submit}>
        <div className="brand">
          EverTask<span>monitoring</span>
        </div>
        <label>
          Username
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {error && (
          <div className="error" role="alert" data-testid="login-error">
            {error}
          </div>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint">
          Credentials come from the host's options or EVERTASK_MONITOR_USERNAME / EVERTASK_MONITOR_PASSWORD; without
          them the host logs a generated password at start.
        </p>
      </form>
    </div>
  );
}
