//! A blocking client for the tpsync server.
