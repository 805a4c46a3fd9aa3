"""EverTask monitoring: REST API, live-event WebSocket and dashboard (FastAPI).

```python
builder.add_monitoring_api(lambda o: o.set_credentials("ops", os.environ["PW"]))
host = builder.build()
app = FastAPI(lifespan=host.lifespan)
mount_monitoring(app, host)          # dashboard at /evertask-monitoring
```
"""

from .auth import Credentials, TokenService
from .component import (
    MonitoringComponent,
    MonitoringSettings,
    add_monitoring_api,
    create_monitoring_app,
    monitoring_of,
    mount_monitoring,
)
from .context import MonitorContext
from .options import MonitoringOptions
from .queries import MonitorQueries
from .standalone import create_standalone_app, storage_from_url
from .throttle import LoginThrottle

__all__ = [
    "Credentials",
    "LoginThrottle",
    "MonitorContext",
    "MonitorQueries",
    "MonitoringComponent",
    "MonitoringOptions",
    "MonitoringSettings",
    "TokenService",
    "add_monitoring_api",
    "create_monitoring_app",
    "create_standalone_app",
    "monitoring_of",
    "mount_monitoring",
    "storage_from_url",
]
