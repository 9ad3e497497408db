"""Every publisher postback macro as a query string, each under its own name."""

from offers.outbound_urls import MACROS

ALL_MACROS_QUERY = "&".join(f"{name}={{{name}}}" for name in MACROS)
