"""CRM adapters: the shared protocol and helpers in base, one subpackage per CRM."""
