#!/usr/bin/env python3
"""Seeded generator for datasets/shipping-docs: classify a shipment document from its text.

Each row is a chat: a system prompt listing the labels, the document text as the user turn, and
the label as the assistant turn. Documents are synthetic but shaped like the real thing (parties,
ports, HS codes, Incoterms, amounts, dates, reference numbers) with several layouts per class, so a
model has to read the content rather than match one template.

Writes (stdlib only, deterministic for --seed):
  shipping-docs/train.jsonl     400 rows (seed)
  shipping-docs/eval.jsonl       80 rows (seed + 1, held out: no document text shared with train)
  shipping-docs/bad-rows.jsonl   hand-made malformed rows for the prepare stage's error reporting

Usage: python3 datasets/make_shipping_docs.py [--seed 7] [--train 400] [--eval 80]
"""
import argparse
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "shipping-docs")

LABELS = ["bill_of_lading", "commercial_invoice", "packing_list", "customs_declaration",
          "delivery_receipt", "damage_claim"]
SYSTEM = ("You classify shipment documents. Read the document and answer with exactly one label: "
          + ", ".join(LABELS) + ".")

COMPANIES = ["Nordhavn Trading ApS", "Pacific Rim Components Ltd", "Andes Coffee Exporters S.A.",
             "Rheinland Maschinenbau GmbH", "Saigon Textile Co.", "Great Lakes Auto Parts Inc.",
             "Mumbai Spice Traders Pvt Ltd", "Kobe Precision Tools K.K.", "Lagos Agro Commodities Ltd",
             "Valencia Citrus Cooperative", "Baltic Timber OÜ", "Shenzhen Brightway Electronics",
             "Monterrey Steelworks S.A. de C.V.", "Cape Wine Merchants (Pty) Ltd", "Ontario Maple Foods Corp.",
             "Anatolia Ceramics A.Ş.", "Perth Mineral Sands Pty", "Lyon Silk & Co.", "Santos Sugar Export Ltda",
             "Busan Marine Supply Co."]
CARRIERS = ["Maersk Line", "MSC", "CMA CGM", "Hapag-Lloyd", "ONE", "Evergreen", "COSCO Shipping", "ZIM"]
COURIERS = ["DHL Freight", "Kuehne+Nagel Road", "DB Schenker", "XPO Logistics", "Local Haulage Ltd"]
PORTS = ["Rotterdam, NL", "Shanghai, CN", "Singapore, SG", "Hamburg, DE", "Los Angeles, US", "Antwerp, BE",
         "Busan, KR", "Santos, BR", "Mumbai (Nhava Sheva), IN", "Felixstowe, GB", "Valencia, ES", "Durban, ZA",
         "Yokohama, JP", "Ho Chi Minh City, VN", "Lagos (Apapa), NG", "Vancouver, CA", "Genoa, IT", "Gdansk, PL"]
VESSELS = ["MV Nordic Star", "MSC Aurora", "CMA CGM Tage", "Ever Gentle", "Maersk Kinloss", "ONE Harmony",
           "Cosco Pride", "ZIM Antwerp", "Hapag Berlin Express"]
GOODS = [("roasted coffee beans, 60 kg jute bags", "0901.21", "bag"), ("cotton T-shirts, assorted sizes", "6109.10", "carton"),
         ("brake pads for passenger cars", "8708.30", "carton"), ("ceramic floor tiles 60x60", "6907.21", "pallet"),
         ("frozen shrimp, 10 kg blocks", "0306.17", "carton"), ("lithium-ion battery packs", "8507.60", "crate"),
         ("CNC milling inserts", "8209.00", "box"), ("red wine, 750 ml bottles", "2204.21", "case"),
         ("sawn pine timber", "4407.11", "bundle"), ("stainless steel coils", "7219.33", "coil"),
         ("LED panel lights", "9405.42", "carton"), ("basmati rice, 25 kg bags", "1006.30", "bag"),
         ("raw cane sugar", "1701.14", "big bag"), ("maple syrup, 1 L tins", "1702.20", "case"),
         ("silk scarves", "6214.10", "carton"), ("hydraulic pumps", "8413.50", "crate")]
INCOTERMS = ["FOB", "CIF", "CFR", "EXW", "DAP", "DDP", "FCA", "CPT"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CNY", "INR"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAMAGE = ["water ingress through a torn container door seal", "crushed cartons on the bottom two tiers",
          "pallets collapsed during discharge", "temperature excursion to +6 °C for 14 hours",
          "forklift puncture on three crates", "shortage of 12 cartons against the packing list",
          "broken bottles and wet outer cases", "rust on coil edges from condensation"]


def pl(unit):
    return unit + ("es" if unit.endswith("x") else "s")


def date(r):
    return f"{r.randint(1, 28):02d} {r.choice(MONTHS)} 202{r.randint(3, 6)}"


def iso(r):
    return f"202{r.randint(3, 6)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def money(r, lo, hi):
    return f"{r.uniform(lo, hi):,.2f}"


def ref(r, prefix, digits=7):
    return prefix + "".join(str(r.randint(0, 9)) for _ in range(digits))


def container(r):
    return "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U" + str(r.randint(1000000, 9999999))


def parties(r):
    a, b = r.sample(COMPANIES, 2)
    return a, b


# MARK: - one generator per class (each with a few layouts)

def bill_of_lading(r):
    shipper, consignee = parties(r)
    goods, hs, unit = r.choice(GOODS)
    pol, pod = r.sample(PORTS, 2)
    n = r.randint(2, 60)
    kg = r.randint(800, 26000)
    if r.random() < 0.5:
        return (f"BILL OF LADING No. {ref(r, r.choice(['MAEU', 'MSCU', 'CMAU', 'HLCU']), 9)}\n"
                f"Carrier: {r.choice(CARRIERS)}   Vessel/Voyage: {r.choice(VESSELS)} / {r.randint(100, 999)}{r.choice('EWNS')}\n"
                f"Shipper: {shipper}\nConsignee: TO ORDER OF {consignee}\nNotify party: {r.choice(COMPANIES)}\n"
                f"Port of loading: {pol}\nPort of discharge: {pod}\n"
                f"Container {container(r)}, seal {r.randint(100000, 999999)}: {n} {pl(unit)} {goods}, gross weight {kg:,} kg\n"
                f"Freight {r.choice(['prepaid', 'collect'])}. Shipped on board {date(r)}. "
                f"Number of original B/Ls: {r.choice(['THREE (3)', 'ONE (1)'])}.")
    return (f"Sea waybill / B/L {ref(r, 'SWB-', 8)} issued {date(r)} by {r.choice(CARRIERS)} as carrier.\n"
            f"Received in apparent good order and condition from {shipper} for carriage from {pol} to {pod} "
            f"aboard {r.choice(VESSELS)}: {n} x {unit} said to contain {goods} (HS {hs}), {kg:,} kg, "
            f"{r.uniform(5, 67):.1f} m3. Deliver to {consignee} against surrender of one original. "
            f"Clean on board. Place of receipt: {r.choice(PORTS)} CY.")


def commercial_invoice(r):
    seller, buyer = parties(r)
    goods, hs, unit = r.choice(GOODS)
    qty = r.randint(10, 5000)
    price = r.uniform(0.8, 420)
    cur = r.choice(CURRENCIES)
    total = qty * price
    term = r.choice(INCOTERMS)
    if r.random() < 0.5:
        return (f"COMMERCIAL INVOICE\nInvoice no.: {ref(r, 'INV-', 6)}    Date: {iso(r)}\n"
                f"Seller: {seller}\nBuyer: {buyer}\nTerms of delivery: {term} {r.choice(PORTS)} (Incoterms 2020)\n"
                f"Payment: {r.choice(['L/C at sight', '30 days net', 'T/T in advance', 'CAD'])}\n"
                f"Description: {goods}, HS {hs}\nQuantity: {qty:,} {pl(unit)} x {cur} {price:,.2f} = {cur} {total:,.2f}\n"
                f"Country of origin: {r.choice(PORTS).split(', ')[1]}. We certify this invoice is true and correct.")
    tax = total * r.choice([0, 0.05, 0.1, 0.2])
    return (f"{seller} — Invoice {ref(r, '', 5)}/{r.randint(23, 26)}, dated {date(r)}\n"
            f"Bill to: {buyer}, ship to: {r.choice(PORTS)}\n"
            f"Line 1: {goods} ({hs}), {qty:,} {pl(unit)} @ {price:,.2f} {cur}\n"
            f"Subtotal {cur} {total:,.2f}; freight {cur} {money(r, 150, 4800)}; VAT {cur} {tax:,.2f}\n"
            f"Amount due {cur} {total + tax:,.2f} by {date(r)}, {term}. Bank: IBAN {ref(r, 'DE', 20)}")


def packing_list(r):
    shipper, consignee = parties(r)
    goods, hs, unit = r.choice(GOODS)
    n = r.randint(3, 40)
    lines = []
    for i in range(r.randint(2, 4)):
        k = r.randint(1, 12)
        lines.append(f"  {unit.title()} {i * 12 + 1}-{i * 12 + k}: {k} x {goods}, net {r.randint(8, 900)} kg, "
                     f"gross {r.randint(10, 950)} kg, {r.randint(40, 120)}x{r.randint(30, 100)}x{r.randint(20, 160)} cm")
    head = r.choice(["PACKING LIST", "Packing list / Liste de colisage", "DETAILED PACKING LIST"])
    return (f"{head} {ref(r, 'PL', 6)}  date {iso(r)}\nExporter: {shipper}\nConsignee: {consignee}\n"
            f"Ref. invoice {ref(r, 'INV-', 6)}, PO {ref(r, 'PO', 5)}, container {container(r)}\n"
            + "\n".join(lines)
            + f"\nTotal: {n} {pl(unit)}, marks & numbers: {consignee.split()[0].upper()}/{r.randint(1, 99):02d}, "
              f"total gross weight {r.randint(500, 24000):,} kg, volume {r.uniform(2, 60):.2f} CBM")


def customs_declaration(r):
    exporter, importer = parties(r)
    goods, hs, unit = r.choice(GOODS)
    cur = r.choice(CURRENCIES)
    value = r.uniform(2000, 900000)
    duty = r.choice([0, 2.5, 3.7, 6.5, 10, 12])
    if r.random() < 0.5:
        return (f"SINGLE ADMINISTRATIVE DOCUMENT — import declaration {ref(r, '26NL', 12)}\n"
                f"Box 1: IM A  Box 2 consignor: {exporter}  Box 8 consignee: {importer}\n"
                f"Box 15 country of dispatch: {r.choice(PORTS).split(', ')[1]}  Box 31: {goods}\n"
                f"Box 33 commodity code: {hs.replace('.', '')}{r.randint(10, 99)}  Box 37 procedure: 4000\n"
                f"Box 46 statistical value: {cur} {value:,.2f}  Box 47 duty {duty}% = {cur} {value * duty / 100:,.2f}, "
                f"import VAT {r.choice([7, 19, 20, 21])}%. Declarant EORI {ref(r, 'NL', 9)}, lodged {date(r)}.")
    return (f"Export declaration (Shipping Bill) no. {ref(r, '', 7)} dated {date(r)}\n"
            f"Exporter {exporter}, IEC {ref(r, '', 10)}; consignee {importer}\n"
            f"Port of export: {r.choice(PORTS)}; destination: {r.choice(PORTS)}\n"
            f"Item: {goods}, tariff heading {hs}, FOB value {cur} {value:,.2f}, {r.randint(5, 900)} {pl(unit)}\n"
            f"Let export order granted by customs officer {r.choice(['R. Iyer', 'M. de Vries', 'J. Okafor', 'L. Chen'])}; "
            f"drawback claimed: {r.choice(['yes', 'no'])}.")


def delivery_receipt(r):
    shipper, consignee = parties(r)
    goods, hs, unit = r.choice(GOODS)
    n = r.randint(1, 60)
    who = r.choice(["A. Novak", "P. Mensah", "S. Tanaka", "M. García", "K. Schmidt", "R. Gupta", "E. Laurent"])
    if r.random() < 0.5:
        return (f"DELIVERY RECEIPT / PROOF OF DELIVERY {ref(r, 'POD', 7)}\nCarrier: {r.choice(COURIERS)}, "
                f"truck {ref(r, '', 4)}-{r.choice(['AB', 'KX', 'ZT'])}\nDelivered to: {consignee}, dock {r.randint(1, 24)}\n"
                f"Shipper: {shipper}\nReceived {n} {pl(unit)} of {goods} on {date(r)} at {r.randint(6, 19):02d}:{r.randint(0, 59):02d}, "
                f"{r.choice(['in good order', 'in good order and condition', 'seals intact'])}.\n"
                f"Signature: {who}   Printed name: {who}")
    return (f"Goods received note {ref(r, 'GRN', 6)} — {consignee} warehouse\n"
            f"We acknowledge receipt from {r.choice(COURIERS)} of {n} {pl(unit)} ({goods}), order {ref(r, 'PO', 5)}, "
            f"seal no. {r.randint(100000, 999999)} verified, on {iso(r)}. No exceptions noted. "
            f"Received by {who}, stamp and signature on file.")


def damage_claim(r):
    claimant, carrier = r.choice(COMPANIES), r.choice(CARRIERS + COURIERS)
    goods, hs, unit = r.choice(GOODS)
    cur = r.choice(CURRENCIES)
    amount = r.uniform(400, 180000)
    what = r.choice(DAMAGE)
    if r.random() < 0.5:
        return (f"NOTICE OF CLAIM — cargo damage\nTo: {carrier}, claims department\nFrom: {claimant}\n"
                f"B/L {ref(r, 'MAEU', 9)}, container {container(r)}, discharged {r.choice(PORTS)} on {date(r)}\n"
                f"On unpacking we found {what}. Affected: {r.randint(1, 40)} {pl(unit)} of {goods}.\n"
                f"We hold you responsible and claim {cur} {amount:,.2f} (invoice value plus survey fees). "
                f"Surveyor report {ref(r, 'SR', 5)} attached. Please acknowledge within 30 days.")
    return (f"Insurance claim form, policy {ref(r, 'MC-', 8)}, claim ref {ref(r, 'CL', 6)}\n"
            f"Insured: {claimant}; carrier: {carrier}; voyage {r.choice(PORTS)} to {r.choice(PORTS)}\n"
            f"Loss/damage: {what}, noted on the delivery receipt as exception on {date(r)}.\n"
            f"Goods: {goods}; quantity affected {r.randint(1, 40)} {pl(unit)}; amount claimed {cur} {amount:,.2f}; "
            f"salvage value {cur} {amount * r.uniform(0, 0.3):,.2f}.")


GENERATORS = {"bill_of_lading": bill_of_lading, "commercial_invoice": commercial_invoice,
              "packing_list": packing_list, "customs_declaration": customs_declaration,
              "delivery_receipt": delivery_receipt, "damage_claim": damage_claim}


def row(text, label):
    return {"messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": "Classify this document:\n\n" + text},
                         {"role": "assistant", "content": label}]}


def make(seed, count, exclude=frozenset()):
    r = random.Random(seed)
    rows, seen = [], set(exclude)
    while len(rows) < count:
        label = LABELS[len(rows) % len(LABELS)] if r.random() < 0.5 else r.choice(LABELS)
        text = GENERATORS[label](r)
        if text in seen:
            continue
        seen.add(text)
        rows.append(row(text, label))
    return rows, seen


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for x in rows:
            f.write(json.dumps(x, ensure_ascii=False) + "\n")


def write_bad_rows(path):
    """Malformed rows on known lines; the prepare tests check each file:line and reason."""
    good = json.dumps(row("PACKING LIST PL100200  date 2025-03-04\nExporter: Baltic Timber OÜ", "packing_list"),
                      ensure_ascii=False)
    lines = [
        good.encode(),                                                                   # 1 ok
        b'{"messages": [{"role": "user", "content": "hi"}, ',                             # 2 invalid_json (truncated)
        b'{"instruction": "Classify: COMMERCIAL INVOICE INV-1", "input": ""}',           # 3 missing_field output
        json.dumps({"messages": [{"role": "user", "content": "Classify: POD 1"},
                                 {"role": "bot", "content": "delivery_receipt"}]}).encode(),   # 4 invalid_role
        b'{"prompt": "Classify: NOTICE OF CLAIM", "completion": ""}',                     # 5 empty_content
        b'{"text": "Sea waybill from Santos \xff\xfe to Genoa"}',                       # 6 invalid_utf8
        b'not json at all',                                                               # 7 invalid_json
        b'',                                                                              # 8 blank (counted)
        b'["a", "list"]',                                                                 # 9 not_an_object
        b'{"label": "bill_of_lading", "body": "B/L 123"}',                               # 10 unknown_format
        json.dumps({"messages": [{"role": "user", "content": 42}]}).encode(),           # 11 wrong_type
        json.dumps({"messages": [{"role": "user", "content": "Classify: B/L MAEU1"}]}).encode(),  # 12 invalid_role (no assistant)
        good.encode(),                                                                   # 13 duplicate of line 1
        b'{"prompt": "Classify: GRN 5", "completion": "delivery_receipt"}',              # 14 ok (completion)
    ]
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--eval", type=int, default=80)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    train, seen = make(a.seed, a.train)
    evalrows, _ = make(a.seed + 1, a.eval, exclude=seen)
    write_jsonl(os.path.join(OUT, "train.jsonl"), train)
    write_jsonl(os.path.join(OUT, "eval.jsonl"), evalrows)
    write_bad_rows(os.path.join(OUT, "bad-rows.jsonl"))
    print(f"wrote {len(train)} train, {len(evalrows)} eval rows and bad-rows.jsonl to {OUT}")


if __name__ == "__main__":
    main()
