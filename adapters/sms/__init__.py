"""SMS channel: asyncio SMPP 3.4 client to the mobile operators, encoding and splitting, delivery
receipts, and the SMSC simulator. Built by the SMS-core issue; nothing here is wired yet."""
