"""The mobile API, driven through its generated Python bindings against a real
tpsync server (started by tests/tests/mobile_python.rs, which sets the
TPSYNC_* variables below and puts the bindings on PYTHONPATH).

Run alone: build the bindings as that test does, start a server with the
county fixture, then `python3 -m unittest -v` in this folder.
"""

import os
import tempfile
import threading
import time
import unittest

from tpsync_mobile import tpsync as tp
from tpsync_mobile import tpsync_core as core

URL = os.environ["TPSYNC_URL"]
PASSWORD = os.environ["TPSYNC_PASSWORD"]
TTL_S = int(os.environ["TPSYNC_ACCESS_TTL_S"])
COUNTY = os.environ["TPSYNC_COUNTY"]
SCHOOL = os.environ["TPSYNC_SCHOOL"]
TEACHER = os.environ["TPSYNC_TEACHER"]
OTHER_SCHOOL = os.environ["TPSYNC_OTHER_SCHOOL"]
TOWNSHIP_USER = os.environ["TPSYNC_TOWNSHIP_USER"]


def book(reg_no, title, isbn=None, shelf=None, copies=1):
    return core.Book(
        reg_no=reg_no, isbn=isbn, title=title, author=None, publisher=None,
        pub_year=None, clc_class=None, price_fen=None, copies=copies,
        shelf=shelf, received_on=None, status=core.BookStatus.ON_SHELF,
        status_reason=None, status_date=None,
    )


def equipment(asset_no, name, quantity, unit_price_fen, status=core.EquipmentStatus.IN_USE):
    return core.EquipmentItem(
        asset_no=asset_no, name=name, category_code=None, brand=None, model=None,
        spec=None, unit="台", quantity=quantity, unit_price_fen=unit_price_fen,
        funding_source=None, keeper=None, room="科学室", acquired_on=None,
        status=status, status_reason=None, status_date=None,
    )


def text(value):
    return tp.FieldValue.TEXT(value=value)


class Phone:
    """A phone with its own store directory, signed in as `user`."""

    def __init__(self, device, user=TEACHER, school=SCHOOL):
        self.dir = tempfile.mkdtemp(prefix="tpsync-phone-")
        self.device = device
        self.user = user
        self.session = None
        self.store = tp.SchoolStore.open(tp.StoreConfig(
            path=self.dir, school_code=school, county_code=None,
            username=user, device_id=device,
        ))

    def sign_in(self):
        self.session = tp.sign_in(URL, self.user, PASSWORD, self.device, "test phone")
        return self.session

    def credentials(self):
        if self.session is None:
            self.sign_in()
        return tp.Credentials.TOKENS(
            access_token=self.session.access_token,
            refresh_token=self.session.refresh_token,
        )

    def sync(self, observer=None, cancel=None):
        report = self.store.sync(URL, self.credentials(), observer, cancel)
        if report.session is not None:
            self.session = report.session
        return report

    def add_book(self, reg_no, title, **kw):
        return self.store.create(core.AnyRecord.BOOK(record=book(reg_no, title, **kw)))

    def book(self, record_id):
        found = self.store.get(core.RecordKind.BOOK, record_id)
        return None if found is None else found.record

    def books_by_reg(self, prefix):
        """{reg_no: (id, title, shelf)} of the books whose number starts with prefix."""
        query = core.RecordQuery(
            kind=core.RecordKind.BOOK, statuses=[], text=prefix, equals=[],
            sort_by="reg_no", descending=False, offset=0, limit=0,
        )
        return {
            r.record.record.reg_no: (r.id, r.record.record.title, r.record.record.shelf)
            for r in self.store.list(query).records
            if r.record.record.reg_no.startswith(prefix)
        }


class Rounds(tp.SyncObserver):
    def __init__(self):
        self.seen = []

    def progress(self, progress):
        self.seen.append(progress)


class Story(unittest.TestCase):
    def test_two_phones_merge_see_a_conflict_and_resolve_it(self):
        a, b = Phone("py-story-a"), Phone("py-story-b")
        # Offline: each phone registers a book; nothing touches the network.
        west = a.add_book("PY-S-1", "西游记", isbn="978-7-02-000220-7", shelf="A-1")
        water = b.add_book("PY-S-2", "水浒传", shelf="A-1")
        self.assertGreater(a.store.sync_status().pending_changes, 0)
        self.assertIsNone(a.store.sync_status().last_success_ms)

        rounds = Rounds()
        a.sync(observer=rounds)
        self.assertTrue(rounds.seen and rounds.seen[-1].round >= 1)
        self.assertGreater(rounds.seen[-1].changes_sent, 0)
        b.sync()
        a.sync()
        for phone in (a, b):
            self.assertEqual(set(phone.books_by_reg("PY-S-")), {"PY-S-1", "PY-S-2"})
            # The barcode (ISBN-13 without hyphens) finds the book.
            self.assertEqual([r.id for r in phone.store.find_books("9787020002207", 0)], [west])
        self.assertEqual(b.book(west).title, "西游记")
        self.assertEqual(a.book(water).title, "水浒传")
        self.assertEqual(a.store.county_code(), COUNTY)

        # Both shelve 西游记 differently while offline (上架): a conflict.
        base = a.book(west)
        for phone, shelf in ((a, "A-2"), (b, "B-9")):
            edited = phone.book(west)
            edited.shelf = shelf
            self.assertTrue(phone.store.update(
                west, core.AnyRecord.BOOK(record=base), core.AnyRecord.BOOK(record=edited)))
        a.sync()
        b.sync()
        a.sync()
        seen = []
        for phone in (a, b):
            conflicts = phone.store.conflicts(core.RecordKind.BOOK, west)
            self.assertEqual([c.field for c in conflicts], ["shelf"])
            values = [v.value for v in conflicts[0].values]
            self.assertEqual(sorted(values), ["A-2", "B-9"])
            seen.append(values[0])
            self.assertEqual(phone.book(west).shelf, values[0])
            self.assertEqual(phone.store.conflicted_records(core.RecordKind.BOOK), [west])
            listed = {r.id: r.conflicted_fields for r in phone.store.list(core.RecordQuery(
                kind=core.RecordKind.BOOK, statuses=[], text="PY-S-", equals=[],
                sort_by=None, descending=False, offset=0, limit=0)).records}
            self.assertEqual(listed[west], ["shelf"])
        self.assertEqual(seen[0], seen[1], "both phones show the same winner")

        # History: who set the shelf, on which device, old and new.
        shelf_changes = [h for h in a.store.history(core.RecordKind.BOOK, west) if h.field == "shelf"]
        self.assertEqual({h.device_id for h in shelf_changes}, {"py-story-a", "py-story-b"})
        self.assertEqual({h.username for h in shelf_changes}, {TEACHER})
        self.assertEqual({h.new_value.value for h in shelf_changes}, {"A-1", "A-2", "B-9"})

        # b resolves; after a sync both see one value and no conflict.
        b.store.resolve_conflict(core.RecordKind.BOOK, west, "shelf", text("A-3"))
        b.sync()
        a.sync()
        for phone in (a, b):
            self.assertEqual(phone.store.conflicts(core.RecordKind.BOOK, west), [])
            self.assertEqual(phone.book(west).shelf, "A-3")
            status = phone.store.sync_status()
            self.assertEqual(status.pending_changes, 0)
            self.assertIsNotNone(status.last_success_ms)
            self.assertIsNone(status.last_error)
        self.assertEqual(a.books_by_reg("PY-S-"), b.books_by_reg("PY-S-"))

        # The township clerk's app keeps a store per school it visits.
        clerk = Phone("py-story-town", user=TOWNSHIP_USER)
        clerk.sync()
        self.assertEqual(clerk.books_by_reg("PY-S-"), a.books_by_reg("PY-S-"))

    def test_weeding_is_a_status_with_a_reason_never_a_delete(self):
        a = Phone("py-weed-a")
        worn = a.add_book("PY-W-1", "旧课本")
        self.assertTrue(a.store.set_status(core.RecordKind.BOOK, worn, "weeded", "破损", "2026-11-20"))
        kept = a.book(worn)
        self.assertEqual((kept.status, kept.status_reason, kept.status_date),
                         (core.BookStatus.WEEDED, "破损", "2026-11-20"))
        on_shelf = a.store.list(core.RecordQuery(
            kind=core.RecordKind.BOOK, statuses=["on_shelf"], text="PY-W-", equals=[],
            sort_by=None, descending=False, offset=0, limit=0))
        self.assertEqual(on_shelf.total, 0)
        with self.assertRaises(tp.TpError.InvalidInput) as e:
            a.store.set_status(core.RecordKind.BOOK, worn, "burnt", None, None)
        self.assertIn("weeded", str(e.exception))
        a.sync()
        b = Phone("py-weed-b")
        b.sync()
        self.assertEqual(b.book(worn).status, core.BookStatus.WEEDED)


class Stocktake(unittest.TestCase):
    def test_two_phones_count_one_room_and_neither_overwrites(self):
        a, b = Phone("py-count-a"), Phone("py-count-b")
        item = a.store.create(core.AnyRecord.EQUIPMENT_ITEM(
            record=equipment("PY-YQ-1", "学生显微镜", 12, 38_000)))
        session = a.store.create(core.AnyRecord.STOCKTAKE_SESSION(record=core.StocktakeSession(
            title="2026年秋季盘点", room="科学室", started_on="2026-11-20",
            status=core.StocktakeStatus.OPEN, closed_on=None)))
        a.sync()
        b.sync()
        a.store.count_item(session, item, None, 12, False, None)
        b.store.count_item(session, item, None, 11, False, "一台借给中心校")
        b.store.count_item(session, None, "旧地球仪", 1, False, None)
        a.sync()
        b.sync()
        a.sync()
        for phone in (a, b):
            lines = [r.record.record for r in phone.store.stocktake_lines(session)]
            self.assertEqual(len(lines), 3)
            by_device = sorted((l.counted_by_device, l.recorded_qty, l.counted_qty, l.result) for l in lines)
            self.assertEqual(by_device, [
                ("py-count-a", 12, 12, core.StocktakeResult.MATCH),
                ("py-count-b", 0, 1, core.StocktakeResult.SURPLUS),
                ("py-count-b", 12, 11, core.StocktakeResult.SHORTAGE),
            ])
        a.store.set_status(core.RecordKind.STOCKTAKE_SESSION, session, "closed", None, "2026-11-23")
        closed = a.store.get(core.RecordKind.STOCKTAKE_SESSION, session).record
        self.assertEqual((closed.status, closed.closed_on), (core.StocktakeStatus.CLOSED, "2026-11-23"))
        # Scrapping (报废) keeps the item with its reason.
        a.store.set_status(core.RecordKind.EQUIPMENT_ITEM, item, "scrapped", "镜头损坏无法修复", "2026-11-23")
        scrapped = a.store.get(core.RecordKind.EQUIPMENT_ITEM, item).record
        self.assertEqual((scrapped.status, scrapped.status_reason), (core.EquipmentStatus.SCRAPPED, "镜头损坏无法修复"))
        with self.assertRaises(tp.TpError.NotFound):
            a.store.count_item(session, "0" * 32, None, 1, False, None)


class Checklist(unittest.TestCase):
    def test_values_computed_from_the_records_against_the_county_template(self):
        a = Phone("py-check-a")
        before = a.store.checklist()
        self.assertTrue(any("同步" in n for n in before.notes), before.notes)
        a.sync()  # brings the county template (thresholds)
        profile = a.store.profile()
        edited = a.store.profile()
        edited.school_type = core.SchoolType.TEACHING_POINT
        edited.students_grade_1 = 8
        edited.students_grade_2 = 7
        edited.students_grade_3 = 6
        edited.teachers_qualified = 2
        edited.teachers_key = 0
        edited.teachers_pe_arts = 1
        edited.teaching_area_m2 = 180.5
        edited.sports_area_m2 = 400.0
        edited.multimedia_classrooms = 1
        self.assertTrue(a.store.update_profile(profile, edited))
        a.store.create(core.AnyRecord.EQUIPMENT_ITEM(record=equipment("PY-C-1", "投影仪", 1, 450_000)))
        a.store.create(core.AnyRecord.EQUIPMENT_ITEM(
            record=equipment("PY-C-2", "坏风琴", 1, 90_000, status=core.EquipmentStatus.DAMAGED)))

        evaluation = a.store.checklist()
        self.assertEqual(len(evaluation.stages), 1)
        stage = evaluation.stages[0]
        self.assertEqual((stage.stage, stage.students), (core.Stage.PRIMARY, 21))
        by_code = {i.code: i for i in stage.indicators}
        self.assertEqual(set(by_code), {"R1", "R2", "R3", "R4", "R5", "R6", "R7"})
        # Thresholds come from the county's template (indicators.md, 小学).
        self.assertAlmostEqual(by_code["R6"].threshold, 2000)
        self.assertAlmostEqual(by_code["R1"].threshold, 4.2)
        # R6: equipment in use, from the ledger (whatever every device of
        # this school has recorded), in 元 per student.
        ledger = a.store.list(core.RecordQuery(
            kind=core.RecordKind.EQUIPMENT_ITEM, statuses=["in_use"], text=None, equals=[],
            sort_by=None, descending=False, offset=0, limit=0)).records
        in_use_yuan = sum(r.record.record.quantity * r.record.record.unit_price_fen for r in ledger) / 100
        self.assertAlmostEqual(by_code["R6"].value, in_use_yuan / 21, places=6)
        self.assertEqual(by_code["R6"].source, core.ValueOrigin.COMPUTED)
        self.assertAlmostEqual(by_code["R1"].value, 2 * 100 / 21, places=6)
        self.assertTrue(by_code["R1"].meets)
        self.assertFalse(by_code["R2"].meets)  # no key teachers
        self.assertIsNotNone(by_code["R2"].shortfall)
        self.assertTrue(stage.verdict.is_FAIL() or stage.verdict.is_UNDETERMINED(), stage.verdict)
        # Books per student: copies on the shelf or lent, against the
        # county's 25 for 小学.
        self.assertEqual(stage.books.code, "BOOKS")
        self.assertAlmostEqual(stage.books.threshold, 25)


class Bundles(unittest.TestCase):
    def test_a_bundle_and_a_byte_exchange_between_phones_with_no_network(self):
        a = Phone("py-bundle-a")
        a.sync()
        a.add_book("PY-B-1", "三国演义")
        c = Phone("py-bundle-c")  # never online
        bundle = a.store.export_bundle(None)
        report = c.store.import_bundle(bundle)
        self.assertTrue(report.documents_changed)
        self.assertEqual(c.books_by_reg("PY-B-"), a.books_by_reg("PY-B-"))
        again = c.store.import_bundle(bundle)
        self.assertEqual(again.documents_changed, [])
        with self.assertRaises(tp.TpError.Protocol):
            c.store.import_bundle(b"not a bundle at all")
        self.assertEqual(c.books_by_reg("PY-B-"), a.books_by_reg("PY-B-"))

        # Offline on both; c syncs with a over "Bluetooth" (bytes), and the
        # link breaks once mid-way: the answer a stored is lost in transit.
        c.add_book("PY-B-2", "红楼梦")
        a.add_book("PY-B-3", "呐喊")
        exchange = c.store.start_exchange("py-bundle-a", False)
        request = exchange.next_request()
        a.store.answer_exchange("py-bundle-c", request)  # answer never arrives
        exchange.abandon()
        rounds = 0
        while True:
            request = exchange.next_request()
            if request is None:
                break
            exchange.receive(a.store.answer_exchange("py-bundle-c", request))
            rounds += 1
        self.assertTrue(exchange.is_done())
        self.assertLessEqual(rounds, 3)
        self.assertEqual(set(a.books_by_reg("PY-B-")), {"PY-B-1", "PY-B-2", "PY-B-3"})
        self.assertEqual(c.books_by_reg("PY-B-"), a.books_by_reg("PY-B-"))
        with self.assertRaises(tp.TpError.Protocol):
            exchange.receive(b"\x00\x01garbage")


class Errors(unittest.TestCase):
    def test_wrong_password_gives_a_typed_error_and_loses_nothing(self):
        a = Phone("py-err-pw")
        kept = a.add_book("PY-E-1", "朝花夕拾")
        with self.assertRaises(tp.TpError.WrongCredentials):
            tp.sign_in(URL, TEACHER, "not-the-password", "py-err-pw", None)
        pending = a.store.sync_status().pending_changes
        with self.assertRaises(tp.TpError.WrongCredentials):
            a.store.sync(URL, tp.Credentials.PASSWORD(username=TEACHER, password="wrong"), None, None)
        status = a.store.sync_status()
        self.assertEqual(status.pending_changes, pending)
        self.assertIsNotNone(status.last_error)
        self.assertIsNotNone(status.last_attempt_ms)
        self.assertEqual(a.book(kept).title, "朝花夕拾")
        # With the password right, the book reaches the server.
        a.store.sync(URL, tp.Credentials.PASSWORD(username=TEACHER, password=PASSWORD), None, None)
        self.assertEqual(a.store.sync_status().pending_changes, 0)
        self.assertIsNone(a.store.sync_status().last_error)

    def test_unreachable_server(self):
        a = Phone("py-err-net")
        kept = a.add_book("PY-E-2", "骆驼祥子")
        a.sign_in()
        for url in ("http://127.0.0.1:9", "http://no-such-host.invalid:8080"):
            with self.assertRaises(tp.TpError.Unreachable) as e:
                a.store.sync(url, a.credentials(), None, None)
            self.assertIn("server", str(e.exception))
        with self.assertRaises(tp.TpError.InvalidInput):
            a.store.sync("ftp://example", a.credentials(), None, None)
        self.assertEqual(a.book(kept).title, "骆驼祥子")
        self.assertGreater(a.store.sync_status().pending_changes, 0)
        a.sync()
        self.assertEqual(a.store.sync_status().pending_changes, 0)

    def test_expired_token_is_refreshed_or_asks_for_sign_in(self):
        a = Phone("py-err-ttl")
        session = a.sign_in()
        kept = a.add_book("PY-E-3", "城南旧事")
        time.sleep(TTL_S + 1.5)
        stale = tp.Credentials.TOKENS(access_token=session.access_token, refresh_token=None)
        with self.assertRaises(tp.TpError.SignInRequired):
            a.store.sync(URL, stale, None, None)
        self.assertEqual(a.book(kept).title, "城南旧事")
        report = a.store.sync(URL, a.credentials(), None, None)
        self.assertIsNotNone(report.session, "a refreshed sync hands back the new tokens")
        self.assertNotEqual(report.session.refresh_token, session.refresh_token)
        self.assertEqual(a.store.sync_status().pending_changes, 0)

    def test_cancel(self):
        a = Phone("py-err-cancel")
        a.add_book("PY-E-4", "边城")
        cancel = tp.CancelToken()
        cancel.cancel()
        with self.assertRaises(tp.TpError.Cancelled):
            a.sync(cancel=cancel)
        a.sync(cancel=tp.CancelToken())
        self.assertEqual(a.store.sync_status().pending_changes, 0)

    def test_what_a_teacher_may_not_do(self):
        other = Phone("py-err-other", school=OTHER_SCHOOL)
        with self.assertRaises(tp.TpError.NotAllowed) as e:
            other.sync()
        self.assertIn(OTHER_SCHOOL, str(e.exception))
        a = Phone("py-err-rules")
        with self.assertRaises(tp.TpError.NotAllowed):
            a.store.create(core.AnyRecord.INDICATOR_TEMPLATE(record=core.IndicatorTemplate(
                code="R9", name="自定", stage=core.Stage.PRIMARY, threshold=1.0, unit=None,
                status=core.EntryStatus.ACTIVE)))
        with self.assertRaises(tp.TpError.InvalidInput):
            a.store.get(core.RecordKind.BOOK, "not-an-id")
        # A store directory belongs to one school.
        config = tp.StoreConfig(path=tempfile.mkdtemp(), school_code=SCHOOL, county_code=None,
                                username=TEACHER, device_id="py-err-rules")
        first = tp.SchoolStore.open(config)
        with self.assertRaises(tp.TpError.Storage):
            tp.SchoolStore.open(config)  # still open (sled locks it)
        del first
        config.school_code = OTHER_SCHOOL
        with self.assertRaises(tp.TpError.InvalidInput) as e:
            tp.SchoolStore.open(config)
        self.assertIn(SCHOOL, str(e.exception))
        with self.assertRaises(tp.TpError.InvalidInput):
            tp.SchoolStore.open(tp.StoreConfig(path=tempfile.mkdtemp(), school_code=SCHOOL, county_code=None,
                                               username=TEACHER, device_id="x" * 40))
        bad = book("PY-E-5", "")
        bad.received_on = "2026-13-45"
        with self.assertRaises(tp.TpError.InvalidInput):
            a.store.create(core.AnyRecord.BOOK(record=bad))
        self.assertEqual(a.books_by_reg("PY-E-5"), {})


class Threads(unittest.TestCase):
    def test_writes_from_several_threads_while_syncing(self):
        a = Phone("py-threads-a")
        a.sign_in()
        errors = []

        def writer(n):
            try:
                for i in range(20):
                    a.add_book(f"PY-T-{n}-{i:02}", f"线程{n}之书{i}")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        def syncer():
            try:
                for _ in range(3):
                    a.sync()
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=syncer))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(a.books_by_reg("PY-T-")), 80)
        a.sync()
        self.assertEqual(a.store.sync_status().pending_changes, 0)
        d = Phone("py-threads-d")
        d.sync()
        self.assertEqual(d.books_by_reg("PY-T-"), a.books_by_reg("PY-T-"))


if __name__ == "__main__":
    unittest.main()
