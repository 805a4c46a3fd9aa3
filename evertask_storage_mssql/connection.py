"""SQL Server connection strings: ODBC, ADO.NET or SQLAlchemy URL -> an aioodbc URL.

ODBC strings (``Driver={...};Server=...;Database=...;UID=...;PWD=...``) pass through with
their keywords normalised; ADO.NET strings (``Server=tcp:host,1433;Database=x;User Id=u;
Password=p;Encrypt=True``) are converted to the ODBC keywords; SQLAlchemy URLs
(``mssql+aioodbc://``, ``mssql+pyodbc://``, ``mssql://``) keep their parts. When no
driver is named, :func:`select_driver` picks one of the installed ODBC drivers.
"""

from __future__ import annotations

import glob
import os
import platform
from collections.abc import Sequence
from urllib.parse import quote_plus

from sqlalchemy.engine import URL, make_url

from evertask_abstractions import ConfigurationError

__all__ = [
    "PREFERRED_DRIVERS",
    "build_odbc_string",
    "installed_drivers",
    "parse_connection_string",
    "select_driver",
    "sqlserver_url",
]

PREFERRED_DRIVERS: tuple[str, ...] = (
    "ODBC Driver 18 for SQL Server",
    "ODBC Driver 17 for SQL Server",
    "FreeTDS",
)
"""Drivers chosen, in this order, when the connection string names none."""

_URL_DRIVERS = frozenset({"mssql", "mssql+aioodbc", "mssql+pyodbc"})

# ADO.NET (and ODBC synonym) keywords -> ODBC keywords; None: ADO.NET-only, dropped
_KEYWORDS: dict[str, str | None] = {
    "driver": "Driver",
    "dsn": "DSN",
    "server": "Server",
    "data source": "Server",
    "address": "Server",
    "addr": "Server",
    "network address": "Server",
    "port": "Port",
    "database": "Database",
    "initial catalog": "Database",
    "uid": "UID",
    "user id": "UID",
    "userid": "UID",
    "user": "UID",
    "pwd": "PWD",
    "password": "PWD",
    "encrypt": "Encrypt",
    "trustservercertificate": "TrustServerCertificate",
    "trust server certificate": "TrustServerCertificate",
    "trusted_connection": "Trusted_Connection",
    "integrated security": "Trusted_Connection",
    "application name": "APP",
    "app": "APP",
    "applicationintent": "ApplicationIntent",
    "application intent": "ApplicationIntent",
    "multisubnetfailover": "MultiSubnetFailover",
    "multi subnet failover": "MultiSubnetFailover",
    "multipleactiveresultsets": "MARS_Connection",
    "mars_connection": "MARS_Connection",
    "workstation id": "WSID",
    "wsid": "WSID",
    "authentication": "Authentication",
    "hostnameincertificate": "HostNameInCertificate",
    "host name in certificate": "HostNameInCertificate",
    "tds_version": "TDS_Version",
    "connect timeout": None,
    "connection timeout": None,
    "timeout": None,
    "command timeout": None,
    "pooling": None,
    "min pool size": None,
    "max pool size": None,
    "connection lifetime": None,
    "persist security info": None,
}
_TIMEOUT_KEYS = frozenset({"connect timeout", "connection timeout", "timeout"})
_BOOLEAN = frozenset(
    {"Encrypt", "TrustServerCertificate", "Trusted_Connection", "MultiSubnetFailover"}
)
_YES = {"true": "yes", "yes": "yes", "sspi": "yes", "mandatory": "yes", "strict": "strict"}
_NO = {"false": "no", "no": "no", "optional": "no"}


def parse_connection_string(text: str) -> list[tuple[str, str]]:
    """``key=value;`` pairs in order (``{...}`` values may hold ``;`` and ``}}``).

    Raises ``ConfigurationError`` naming the fault for a malformed string.
    """
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in "; \t\r\n":
            i += 1
            continue
        eq = text.find("=", i)
        if eq < 0:
            raise ConfigurationError(
                f"Malformed SQL Server connection string: {text[i:]!r} has no '='. "
                "Write key=value pairs separated by ';', e.g. "
                "'Server=host,1433;Database=db;UID=user;PWD=secret'."
            )
        key = text[i:eq].strip()
        if not key or ";" in key:
            raise ConfigurationError(
                f"Malformed SQL Server connection string near {text[i : eq + 1]!r}: missing key "
                "before '='."
            )
        j = eq + 1
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "{":
            value_chars: list[str] = []
            j += 1
            while True:
                if j >= n:
                    raise ConfigurationError(
                        f"Malformed SQL Server connection string: the value of {key!r} opens "
                        "'{' but never closes it (write '}}' for a literal '}')."
                    )
                if text[j] == "}":
                    if j + 1 < n and text[j + 1] == "}":
                        value_chars.append("}")
                        j += 2
                        continue
                    j += 1
                    break
                value_chars.append(text[j])
                j += 1
            value = "".join(value_chars)
            rest = text.find(";", j)
            if text[j : rest if rest >= 0 else n].strip():
                raise ConfigurationError(
                    f"Malformed SQL Server connection string: unexpected text after the "
                    f"braced value of {key!r}."
                )
            i = n if rest < 0 else rest + 1
        else:
            end = text.find(";", j)
            end = n if end < 0 else end
            value = text[j:end].strip()
            i = end + 1
        pairs.append((key, value))
    if not pairs:
        raise ConfigurationError("The SQL Server connection string is empty.")
    return pairs


def _quote(value: str) -> str:
    if any(ch in value for ch in ";{}=") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def _bool(key: str, value: str) -> str:
    lowered = value.strip().lower()
    if lowered in _YES:
        return _YES[lowered]
    if lowered in _NO:
        return _NO[lowered]
    raise ConfigurationError(
        f"{key}={value!r} in the SQL Server connection string: use True/False (or yes/no)."
    )


def installed_drivers() -> list[str]:
    """The ODBC drivers unixODBC/Windows knows, plus the bundled Driver 18 of the
    ``mssql-python-odbc`` wheel (as a library path) when it is installed."""
    found: list[str] = []
    try:
        import pyodbc  # type: ignore[import-not-found,unused-ignore]

        found.extend(str(d) for d in pyodbc.drivers())
    except Exception:  # pyodbc or unixODBC missing: the driver list is empty
        pass
    bundled = _bundled_driver()
    if bundled is not None:
        found.append(bundled)
    return found


def _bundled_driver() -> str | None:
    try:
        import mssql_python_odbc  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    if platform.system() != "Linux":
        return None
    root = os.path.dirname(mssql_python_odbc.__file__ or "")
    machine = "x86_64" if platform.machine() in ("x86_64", "AMD64") else platform.machine()
    distro = "rhel" if os.path.exists("/etc/redhat-release") else "debian_ubuntu"
    matches = sorted(
        glob.glob(os.path.join(root, "libs", "linux", distro, machine, "lib", "libmsodbcsql-*.so*"))
    )
    return matches[-1] if matches else None


def select_driver(available: Sequence[str] | None = None) -> str:
    """The ODBC driver to use when the connection string names none.

    Prefers :data:`PREFERRED_DRIVERS` in order, then any other ``SQL Server`` driver, then
    the bundled Driver 18 library. Raises ``ConfigurationError`` saying how to install one.
    """
    drivers = list(installed_drivers() if available is None else available)
    for preferred in PREFERRED_DRIVERS:
        for driver in drivers:
            if driver.lower() == preferred.lower():
                return driver
    for driver in drivers:
        if "sql server" in driver.lower() or "msodbcsql" in driver.lower():
            return driver
    raise ConfigurationError(
        "No SQL Server ODBC driver is installed. Install Microsoft's ODBC Driver 18 "
        "(`pip install mssql-python-odbc`, or the msodbcsql18 OS package) or FreeTDS "
        "(`apt-get install tdsodbc unixodbc`), or name one with Driver={...} in the "
        "connection string."
    )


def build_odbc_string(
    text: str, available: Sequence[str] | None = None
) -> tuple[str, float | None]:
    """An ODBC or ADO.NET connection string as an ODBC string, and its connect timeout.

    The driver is chosen by :func:`select_driver` when the string names none; FreeTDS gets
    ``Server=host;Port=n`` and ``TDS_Version=7.4``.
    """
    values: dict[str, str] = {}
    extras: list[tuple[str, str]] = []
    timeout: float | None = None
    for key, value in parse_connection_string(text):
        lowered = " ".join(key.lower().split())
        if lowered in _KEYWORDS:
            odbc = _KEYWORDS[lowered]
            if odbc is None:
                if lowered in _TIMEOUT_KEYS:
                    try:
                        timeout = float(value)
                    except ValueError:
                        raise ConfigurationError(
                            f"{key}={value!r} in the SQL Server connection string: use a "
                            "number of seconds."
                        ) from None
                continue
            if odbc in _BOOLEAN or odbc == "MARS_Connection":
                value = _bool(key, value)
            values[odbc] = value
        else:
            extras.append((key, value))
    if "Server" not in values and "DSN" not in values:
        raise ConfigurationError(
            "The SQL Server connection string names no server: add Server=host,1433 (or a DSN=...)."
        )
    if "DSN" not in values and not values.get("Driver"):
        values["Driver"] = select_driver(available)
    server = values.get("Server")
    if server is not None:
        if server.lower().startswith("tcp:"):
            server = server[4:]
        values["Server"] = server
        if "freetds" in values.get("Driver", "").lower():
            host, _, port = server.partition(",")
            values["Server"] = host
            if port and "Port" not in values:
                values["Port"] = port.strip()
            values.setdefault("TDS_Version", "7.4")
    order = ["Driver", "DSN", "Server", "Port", "Database", "UID", "PWD"]
    parts = [(k, values[k]) for k in order if k in values]
    parts += [(k, v) for k, v in values.items() if k not in order]
    parts += extras
    return ";".join(
        f"{k}={{{v}}}" if k == "Driver" else f"{k}={_quote(v)}" for k, v in parts
    ), timeout


def sqlserver_url(
    connection_string: str | URL, available: Sequence[str] | None = None
) -> tuple[URL, float | None]:
    """An ``mssql+aioodbc`` URL for ``connection_string`` and its connect timeout (if set)."""
    if isinstance(connection_string, URL) or "://" in connection_string:
        try:
            url = (
                make_url(connection_string)
                if isinstance(connection_string, str)
                else connection_string
            )
        except Exception as error:
            raise ConfigurationError(
                f"Malformed SQL Server URL ({error}); write mssql+aioodbc://user:password@"
                "host:1433/database or an ODBC connection string."
            ) from error
        if url.drivername not in _URL_DRIVERS:
            raise ConfigurationError(
                f"SqlServerTaskStorage needs an mssql:// URL or an ODBC/ADO.NET connection "
                f"string, got {url.drivername}://...; write mssql+aioodbc://user:password@"
                "host:1433/database."
            )
        query = dict(url.query)
        if "odbc_connect" in query:
            odbc, timeout = build_odbc_string(str(query["odbc_connect"]), available)
            return _odbc_url(odbc), timeout
        if "driver" not in query and not (url.host is None and url.database):  # not a DSN
            query["driver"] = select_driver(available)
        return url.set(drivername="mssql+aioodbc", query=query), None
    odbc, timeout = build_odbc_string(connection_string, available)
    return _odbc_url(odbc), timeout


def _odbc_url(odbc: str) -> URL:
    return make_url("mssql+aioodbc:///?odbc_connect=" + quote_plus(odbc))
