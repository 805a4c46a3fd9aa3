"""MySQL / MariaDB storage for EverTask: aiomysql, group commit, binary-collated keys."""

from evertask_storage_efcore_like import RetentionComponent, RetentionPolicy, RetentionResult

from .extension import add_mysql_storage
from .storage import MySqlTaskStorage, aiomysql_url

__all__ = [
    "MySqlTaskStorage",
    "RetentionComponent",
    "RetentionPolicy",
    "RetentionResult",
    "add_mysql_storage",
    "aiomysql_url",
]
