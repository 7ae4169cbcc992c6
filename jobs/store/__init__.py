"""Persistence shared by the API and the worker: tables, the job state machine, sessions."""
