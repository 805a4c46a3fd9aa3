"""SQL Server / Azure SQL storage for EverTask: aioodbc, group commit, T-SQL claim hints."""

from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, RetentionResult

from .connection import build_odbc_string, parse_connection_string, select_driver, sqlserver_url
from .extension import add_sqlserver_storage
from .statements import SqlServerStatements
from .storage import DEFAULT_SCHEMA, SqlServerTaskStorage

__all__ = [
    "DEFAULT_SCHEMA",
    "RetentionComponent",
    "RetentionPolicy",
    "RetentionResult",
    "SqlServerStatements",
    "SqlServerTaskStorage",
    "add_sqlserver_storage",
    "build_odbc_string",
    "parse_connection_string",
    "select_driver",
    "sqlserver_url",
]
