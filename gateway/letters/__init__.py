"""Letters to the national e-box (Kartpooshe): tracking numbers, content hashing and the signed
evidence chain, acceptance, delivery policy. The e-box wire client lives in adapters/kartpooshe.
"""
