"""USSD channel under *4: sessions, agency menus, SMPP and HTTP operator fronts, phone simulator.
Built by the USSD issue; nothing here is wired yet."""
