"""CRM adapters: the shared protocol, descriptor and helpers in base, the CRMs by name in crms, one subpackage per CRM."""
