"""Salesforce Change Data Capture over the Pub/Sub API: proto stubs, event decoding, the gRPC client and the subscriber."""
