"""Jambo: a customer-management microservice."""
