//! The core's store conformance suite, run against a store whose pool runs every transaction
//! at `READ COMMITTED` (InnoDB then takes no gap locks), on a real MySQL or MariaDB
//! (`MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`) in a table of this run's own.

mod common;

async fn make_store() -> Option<session_layer_mysql::MySqlStore> {
    common::store_read_committed().await
}

session_layer::store_conformance_tests!(make_store);
