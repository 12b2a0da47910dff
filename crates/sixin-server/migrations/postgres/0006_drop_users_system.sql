-- System accounts are found by primary key now (store::talkers_with_sessions).
DROP INDEX users_system;
