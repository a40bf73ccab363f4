// A typed use of the types openapi-typescript generates from /openapi.json: tsc --strict must
// accept it, so a frontend's fetch code keeps compiling against the document.
import type { components, operations, paths } from "./schema";

type V1Customer = components["schemas"]["V1Customer"];
type V1Patch = components["schemas"]["V1CustomerPatch"];
type V1Write = components["schemas"]["V1CustomerWrite"];
type Member = components["schemas"]["LoyaltyMemberWrite"];
type Bulk = components["schemas"]["LoyaltyMemberBulk"];
type ListQuery = NonNullable<operations["v1_list_customers"]["parameters"]["query"]>;
type GetOk = paths["/api/v1/customers/{customer_id}"]["get"]["responses"][200];

const write: V1Write = { firstName: "Fraser", lastName: "Brendand", dob: "1985-04-12" };
const patch: V1Patch = { middleName: "Alexander", address: { postCode: "2145" } };
const bulk: Bulk = [
  { loyalty_id: "3", client_name: "Mariya", client_birthday: "1982-11-17", is_male: false },
];
const one: Member = bulk[0];
const query: ListQuery = { lastName: "Brendand", sortBy: "lastName:desc", pageNo: 0, pageSize: 10 };
const etagHeader: GetOk["headers"]["ETag"] = 'W/"3"';

function fullName(customer: V1Customer): string {
  return `${customer.firstName} ${customer.lastName}`;
}

async function getCustomer(base: string, id: string, token: string): Promise<V1Customer> {
  const response = await fetch(`${base}/api/v1/customers/${id}`, {
    headers: { Authorization: `Bearer ${token}`, "If-None-Match": etagHeader },
  });
  return (await response.json()) as V1Customer;
}

export { fullName, getCustomer, one, patch, query, write };
